-- Observability contract (seed §7), re-created on every migrate.
CREATE OR REPLACE VIEW {control}.v_table_freshness AS
SELECT
    table_name,
    max(run_finished_at) AS last_loaded_at,
    now() - max(run_finished_at) AS lag,
    count(*) FILTER (WHERE run_started_at > now() - interval '24 hours') AS loads_last_24h
FROM {control}.extract_runs
WHERE status = 'loaded'
GROUP BY table_name;

CREATE OR REPLACE VIEW {control}.v_recent_failures AS
SELECT run_id, table_name, run_started_at, run_finished_at, csv_path, error_message
FROM {control}.extract_runs
WHERE status = 'failed' AND run_started_at > now() - interval '24 hours'
ORDER BY run_started_at DESC;

CREATE OR REPLACE VIEW {control}.v_watermark_lag AS
SELECT
    table_name,
    last_extracted_at,
    last_loaded_at,
    rows_loaded_last_run,
    now() - last_loaded_at AS load_lag,
    now() - last_extracted_at AS extract_lag
FROM {control}.extract_watermarks;

-- Rows loaded per day and table, for the dashboard's row-count panel (seed §4 Phase F):
-- the ro role reads the views, never the run log itself.
CREATE OR REPLACE VIEW {control}.v_rows_per_day AS
SELECT
    date_trunc('day', run_finished_at) AS day,
    table_name,
    sum(rows_loaded) AS rows_loaded,
    count(*) AS loads
FROM {control}.extract_runs
WHERE status = 'loaded'
GROUP BY 1, 2;

-- When each table's next load is due by the catalog's schedule (written by every load,
-- dwh/schedule.py): the rule dwh health and dwh verify apply, for Grafana's freshness
-- panel. overdue_hours > 0 means the scheduled run after the last load plus its grace
-- has passed without a load.
CREATE OR REPLACE VIEW {control}.v_table_due AS
SELECT
    w.table_name,
    f.last_loaded_at,
    w.due_at,
    extract(epoch FROM now() - f.last_loaded_at) / 3600.0 AS lag_hours,
    extract(epoch FROM now() - w.due_at) / 3600.0 AS overdue_hours
FROM {control}.extract_watermarks AS w
LEFT JOIN {control}.v_table_freshness AS f USING (table_name);
