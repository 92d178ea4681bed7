-- Per table: when it last loaded and the oldest run whose parts may still wait in
-- exports/ (uploaded or failed after a finished extract).
SELECT
    w.table_name,
    extract(epoch FROM now() - f.last_loaded_at) AS lag_seconds,
    (SELECT extract(epoch FROM now() - min(r.run_started_at))
     FROM {control}.extract_runs AS r
     WHERE r.table_name = w.table_name
       AND r.run_id = ANY(%(waiting_runs)s)) AS oldest_waiting_seconds,
    (SELECT count(*) FROM {control}.v_recent_failures AS r WHERE r.table_name = w.table_name) AS failures,
    f.last_loaded_at
FROM {control}.extract_watermarks AS w
LEFT JOIN {control}.v_table_freshness AS f USING (table_name)
ORDER BY w.table_name;
