INSERT INTO {control}.extract_runs
    (table_name, mode, status, flow_run_id, lower_bound, upper_bound)
VALUES (%(table)s, %(mode)s, 'extracting', %(flow_run_id)s, %(lower)s, %(upper)s)
RETURNING run_id, run_started_at;
