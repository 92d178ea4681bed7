-- Trips deleted in the source (catalog `reconcile_deletes`) stay in bronze, marked with
-- when the reconciliation found them gone (never a silent DELETE: the audit trail holds).
-- IF NOT EXISTS: `dwh migrations generate` already adds it for a table that opts in.
ALTER TABLE {bronze}.trips ADD COLUMN IF NOT EXISTS _dwh_deleted_at timestamptz;
