-- Run logs of the star-schema ETL and the datamart refresh, next to the ingest's.
-- A succeeded transform row is written in the transaction that changed the facts, so
-- its `upper_bound` is the watermark of the next run (on `_dwh_loaded_at`: when rows
-- reached the warehouse, never when the OSM action happened).

CREATE TABLE {control}.transform_runs (
    run_id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status               text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    flow_run_id          uuid,
    started_at           timestamptz NOT NULL,
    finished_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    first_run            boolean,
    lower_bound          timestamptz,
    upper_bound          timestamptz,
    comments_in_window   bigint,
    notes_touched        bigint,
    comments_waiting     bigint,                  -- their note row is not in bronze yet
    facts_inserted       bigint,
    facts_updated        bigint,
    invalid_transitions  bigint,
    status_mismatches    bigint,                  -- computed status <> source status
    error_message        text
);
CREATE INDEX transform_runs_status_idx ON {control}.transform_runs (status, run_id);

CREATE TABLE {control}.datamart_runs (
    run_id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    datamart             text NOT NULL,
    status               text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    full_rebuild         boolean NOT NULL,
    flow_run_id          uuid,
    started_at           timestamptz NOT NULL,
    finished_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    rows_refreshed       bigint,
    error_message        text
);
