INSERT INTO {control}.extract_runs
    (table_name, mode, status, flow_run_id, lower_bound, upper_bound, source_now,
     holdback_seconds, holder_pid, holder_application, holder_state, holder_since, repair)
VALUES (%(table)s, %(mode)s, 'extracting', %(flow_run_id)s, %(lower)s, %(upper)s, %(source_now)s,
        %(holdback_seconds)s, %(holder_pid)s, %(holder_application)s, %(holder_state)s,
        %(holder_since)s, %(repair)s)
RETURNING run_id, run_started_at;
