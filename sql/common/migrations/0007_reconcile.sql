-- Delete reconciliation (catalog `reconcile_deletes`): one row per table and run, with
-- how many source keys were read and how many bronze rows were marked deleted
-- (`_dwh_deleted_at`) or found again. Applied as the pipeline owner.
CREATE TABLE {control}.reconcile_runs (
    reconcile_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name      text NOT NULL,
    status          text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    flow_run_id     uuid,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    chunks          integer,
    source_keys     bigint,
    marked_deleted  bigint,
    restored        bigint,
    error_message   text
);
CREATE INDEX reconcile_runs_table_idx ON {control}.reconcile_runs (table_name, started_at);
