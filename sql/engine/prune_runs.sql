-- Run-log retention: drop finished runs older than the cutoff, but never a table's
-- latest loaded run (freshness reads it), anything still in flight, nor a run whose
-- parts still wait in exports/ (recovery needs its row to load them; without it the
-- table is refused for good).
WITH keep AS (
    SELECT max(run_id) AS run_id
    FROM {control}.extract_runs
    WHERE status = 'loaded'
    GROUP BY table_name
)
DELETE FROM {control}.extract_runs AS r
WHERE r.status IN ('loaded', 'failed')
  AND r.run_started_at < now() - make_interval(days => %(days)s)
  AND r.run_id NOT IN (SELECT run_id FROM keep)
  AND r.run_id <> ALL(%(waiting_runs)s::bigint[]);
