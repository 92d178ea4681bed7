-- What this run did, read by dwh/transform.py before the commit (not a step: no NN_
-- prefix). NULL lower bound: the run started from the beginning.
SELECT
    b.first_run,
    CASE WHEN b.lower_bound = '-infinity' THEN NULL ELSE b.lower_bound END AS lower_bound,
    b.upper_bound,
    extract(epoch FROM b.started_at - b.upper_bound)::float8 AS held_back_seconds,
    (SELECT coalesce(jsonb_object_agg(name, value), '{{}}') FROM etl_stats) AS stats
FROM etl_batch AS b;
