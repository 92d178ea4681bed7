-- Every column of the tables of %(schemas)s, in order, as `dwh init` needs them: the
-- type as format_type prints it (bronze DDL reuses it verbatim, typmods and all),
-- NOT NULL, the default expression (a now()/clock_timestamp() default marks a
-- DB-insertion time, seed §5.1) and whether it is an identity or serial column (a
-- surrogate the source invented, seed §5.3).
SELECT
    n.nspname::text AS schema_name,
    c.relname::text AS table_name,
    a.attname::text AS column_name,
    format_type(a.atttypid, a.atttypmod) AS column_type,
    a.attnotnull AS not_null,
    pg_get_expr(ad.adbin, ad.adrelid) AS default_expr,
    a.attidentity <> '' OR coalesce(pg_get_expr(ad.adbin, ad.adrelid) LIKE 'nextval(%%', false) AS generated_key
FROM pg_catalog.pg_attribute AS a
JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attrdef AS ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE n.nspname = ANY(%(schemas)s::text[])
  AND c.relkind IN ('r', 'p')
  AND a.attnum > 0
  AND NOT a.attisdropped
ORDER BY n.nspname, c.relname, a.attnum;
