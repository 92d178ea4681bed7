-- One row per export run that built a version: published, or failed with the reason.
INSERT INTO {control}.export_versions
    (version, status, full_export, renderer_hash, flow_run_id, started_at,
     documents, rendered, removed, target_url, error_message)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
