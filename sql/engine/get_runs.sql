-- Runs recovery must look at: any with files left in exports/, plus any not finished.
SELECT run_id, table_name, mode, status, upper_bound, rows_extracted, parts, extracted_at, repair
FROM {control}.extract_runs
WHERE table_name = %(table)s
  AND (run_id = ANY(%(run_ids)s) OR status IN ('extracting', 'uploaded'))
ORDER BY run_id;
