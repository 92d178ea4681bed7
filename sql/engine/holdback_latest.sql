-- Per incremental table: the hold-back of its latest extract (how far the upper bound
-- sat below the source clock) and the session that held it, if one did.
SELECT DISTINCT ON (r.table_name)
    r.table_name,
    r.run_id,
    r.holdback_seconds,
    r.holder_pid,
    r.holder_application,
    r.holder_state,
    r.holder_since
FROM {control}.extract_runs AS r
WHERE r.table_name = ANY(%(tables)s)
  AND r.holdback_seconds IS NOT NULL
ORDER BY r.table_name, r.run_id DESC;
