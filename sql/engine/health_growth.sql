-- Growth gate (seed §9 steady state: "row counts in bronze growing at the expected
-- rate"): per table, the rows loaded in the last 24 hours against the median of the
-- trailing days' totals (24-hour windows before that; a day without a load counts as
-- 0). The median, not the mean: one backfill or reseed day must not make every
-- ordinary day look short.
WITH tables AS (
    SELECT unnest(%(tables)s::text[]) AS table_name
),
daily AS (
    SELECT t.table_name, d.n, coalesce(sum(r.rows_loaded), 0) AS rows_loaded
    FROM tables AS t
    CROSS JOIN generate_series(1, %(days)s) AS d (n)
    LEFT JOIN {control}.extract_runs AS r
        ON r.table_name = t.table_name
       AND r.status = 'loaded'
       AND r.run_finished_at > now() - make_interval(days => d.n + 1)
       AND r.run_finished_at <= now() - make_interval(days => d.n)
    GROUP BY t.table_name, d.n
)
SELECT
    t.table_name,
    (SELECT coalesce(sum(r.rows_loaded), 0)
     FROM {control}.extract_runs AS r
     WHERE r.table_name = t.table_name
       AND r.status = 'loaded'
       AND r.run_finished_at > now() - interval '1 day') AS last_day,
    (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d.rows_loaded)
     FROM daily AS d
     WHERE d.table_name = t.table_name) AS median_day
FROM tables AS t
ORDER BY t.table_name;
