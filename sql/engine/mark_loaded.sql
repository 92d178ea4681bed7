-- Runs inside the load transaction (seed §5.4): rows, watermark and run log commit
-- together or not at all. GREATEST keeps a late recovery of an older run from moving
-- the watermark backwards; a run extracted before the last rewind (backfill/reseed)
-- never moves it at all, so the backfill is not undone by a leftover's recovery.
WITH run AS (
    UPDATE {control}.extract_runs
    SET status = 'loaded',
        rows_loaded = %(rows_loaded)s,
        rows_skipped = %(rows_skipped)s,
        error_message = NULL,
        run_finished_at = now()
    WHERE run_id = %(run_id)s
    RETURNING run_id, table_name, upper_bound
)
UPDATE {control}.extract_watermarks AS w
SET last_extracted_at = CASE
        WHEN run.run_id <= coalesce(w.rewound_through_run, 0) THEN w.last_extracted_at
        ELSE greatest(w.last_extracted_at, run.upper_bound)
    END,
    last_loaded_at = now(),
    due_at = %(due_at)s,
    rows_loaded_last_run = %(rows_loaded)s,
    last_run_id = %(run_id)s
FROM run
WHERE w.table_name = run.table_name;
