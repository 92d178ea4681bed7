-- Per table: has it ever loaded, its freshness lag, recent failures, and the watermark.
SELECT
    w.table_name,
    w.last_extracted_at,
    f.last_loaded_at,
    extract(epoch FROM f.lag) AS lag_seconds,
    (SELECT count(*) FROM {control}.v_recent_failures AS r WHERE r.table_name = w.table_name) AS failures,
    (SELECT r.error_message FROM {control}.v_recent_failures AS r
     WHERE r.table_name = w.table_name ORDER BY r.run_started_at DESC LIMIT 1) AS last_error
FROM {control}.extract_watermarks AS w
LEFT JOIN {control}.v_table_freshness AS f USING (table_name)
WHERE w.table_name = ANY(%(tables)s);
