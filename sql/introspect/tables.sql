-- Ordinary and partitioned tables of the schemas %(schemas)s, minus those an extension
-- owns (PostGIS's spatial_ref_sys), with what `dwh init` weighs for seed §6: the row
-- estimate (pg_class.reltuples, -1 before the first ANALYZE, so the live-tuple count of
-- pg_stat_user_tables stands in) and the inserts, updates and deletes seen since the
-- statistics were last reset.
SELECT
    n.nspname::text AS schema_name,
    c.relname::text AS table_name,
    greatest(c.reltuples::bigint, coalesce(s.n_live_tup, 0)) AS row_estimate,
    coalesce(s.n_tup_ins, 0) AS inserts,
    coalesce(s.n_tup_upd, 0) AS updates,
    coalesce(s.n_tup_del, 0) AS deletes
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_stat_user_tables AS s ON s.relid = c.oid
WHERE n.nspname = ANY(%(schemas)s::text[])
  AND c.relkind IN ('r', 'p')
  AND NOT c.relispartition
  AND NOT EXISTS (
      SELECT
      FROM pg_catalog.pg_depend AS d
      WHERE d.classid = 'pg_catalog.pg_class'::regclass
        AND d.objid = c.oid
        AND d.deptype = 'e'
  )
ORDER BY n.nspname, c.relname;
