-- Trips deleted in the source (catalog `reconcile_deletes`) stay in bronze, marked with
-- when the reconciliation found them gone (never a silent DELETE: the audit trail holds).
ALTER TABLE {bronze}.trips ADD COLUMN _dwh_deleted_at timestamptz;
