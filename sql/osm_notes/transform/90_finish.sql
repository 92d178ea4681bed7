-- Record the run: its upper bound is the next run's watermark, committed with the facts.
INSERT INTO {control}.transform_runs (
    status, flow_run_id, started_at, first_run, lower_bound, upper_bound, comments_in_window,
    notes_touched, comments_waiting, facts_inserted, facts_updated, invalid_transitions,
    status_mismatches
)
SELECT
    'succeeded',
    r.flow_run_id,
    b.started_at,
    b.first_run,
    b.lower_bound,
    b.upper_bound,
    s.comments_in_window,
    s.notes_touched,
    s.comments_waiting,
    s.facts_inserted,
    s.facts_updated,
    s.invalid_transitions,
    s.status_mismatches
FROM etl_batch AS b
CROSS JOIN etl_run AS r
CROSS JOIN (
    SELECT
        max(value) FILTER (WHERE name = 'comments_in_window') AS comments_in_window,
        max(value) FILTER (WHERE name = 'notes_touched') AS notes_touched,
        max(value) FILTER (WHERE name = 'comments_waiting') AS comments_waiting,
        max(value) FILTER (WHERE name = 'facts_inserted') AS facts_inserted,
        max(value) FILTER (WHERE name = 'facts_updated') AS facts_updated,
        max(value) FILTER (WHERE name = 'invalid_transitions') AS invalid_transitions,
        max(value) FILTER (WHERE name = 'status_mismatches') AS status_mismatches
    FROM etl_stats
) AS s;
