-- Run-log retention: drop finished runs older than the cutoff, but never a table's
-- latest loaded run (freshness reads it) nor anything still in flight.
WITH keep AS (
    SELECT max(run_id) AS run_id
    FROM {control}.extract_runs
    WHERE status = 'loaded'
    GROUP BY table_name
)
DELETE FROM {control}.extract_runs AS r
WHERE r.status IN ('loaded', 'failed')
  AND r.run_started_at < now() - make_interval(days => %(days)s)
  AND r.run_id NOT IN (SELECT run_id FROM keep);
