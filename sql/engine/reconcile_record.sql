INSERT INTO {control}.reconcile_runs
    (table_name, status, flow_run_id, started_at, chunks, source_keys, marked_deleted, restored, error_message)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s);
