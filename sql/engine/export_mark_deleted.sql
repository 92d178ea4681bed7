-- Retention removed these versions from the target.
UPDATE {control}.export_versions SET status = 'deleted' WHERE version = ANY(%s)
