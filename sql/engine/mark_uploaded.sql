UPDATE {control}.extract_runs
SET status = 'uploaded',
    rows_extracted = %(rows)s,
    bytes_extracted = %(bytes)s,
    parts = %(parts)s,
    csv_path = %(csv_path)s,
    extracted_at = now()
WHERE run_id = %(run_id)s;
