-- Control schema (seed §4 Phase A.2): watermarks and the run log.
-- Applied as the pipeline owner.

CREATE TABLE {control}.extract_watermarks (
    table_name            text PRIMARY KEY,
    -- Upper bound (source clock) of the last loaded extract; the next extract starts here.
    last_extracted_at     timestamptz NOT NULL DEFAULT '2000-01-01T00:00:00Z',
    last_loaded_at        timestamptz,
    rows_loaded_last_run  bigint,
    last_run_id           bigint
);

CREATE TABLE {control}.extract_runs (
    run_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name       text NOT NULL,
    mode             text NOT NULL,
    status           text NOT NULL
                     CHECK (status IN ('extracting', 'uploaded', 'loaded', 'failed')),
    flow_run_id      uuid,
    run_started_at   timestamptz NOT NULL DEFAULT now(),
    -- Extract window on the SOURCE clock: (lower_bound, upper_bound].
    lower_bound      timestamptz,
    upper_bound      timestamptz,
    rows_extracted   bigint,
    bytes_extracted  bigint,
    parts            integer,
    rows_loaded      bigint,
    rows_skipped     bigint,
    csv_path         text,
    error_message    text,
    extracted_at     timestamptz,
    run_finished_at  timestamptz
);

CREATE INDEX extract_runs_table_status_idx
    ON {control}.extract_runs (table_name, status, run_finished_at);
