-- Role contract (seed §4 Phase A, §12): the ro role reads bronze and the views only.
GRANT USAGE ON SCHEMA {bronze}, {control} TO {ro};
GRANT SELECT ON ALL TABLES IN SCHEMA {bronze} TO {ro};
ALTER DEFAULT PRIVILEGES IN SCHEMA {bronze} GRANT SELECT ON TABLES TO {ro};
REVOKE ALL ON ALL TABLES IN SCHEMA {control} FROM {ro};
GRANT SELECT ON
    {control}.v_table_freshness,
    {control}.v_recent_failures,
    {control}.v_watermark_lag,
    {control}.v_rows_per_day,
    {control}.v_table_due
TO {ro};
