UPDATE {control}.extract_runs
SET status = 'failed',
    error_message = %(error)s,
    run_finished_at = now()
WHERE run_id = %(run_id)s;
