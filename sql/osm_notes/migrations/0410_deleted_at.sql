-- Notes and comments deleted in the source (catalog `reconcile_deletes`) stay in bronze,
-- marked with when the reconciliation found them gone: the audit trail holds, and the
-- transform drops their facts.
ALTER TABLE {bronze}.notes ADD COLUMN IF NOT EXISTS _dwh_deleted_at timestamptz;
ALTER TABLE {bronze}.note_comments ADD COLUMN IF NOT EXISTS _dwh_deleted_at timestamptz;
