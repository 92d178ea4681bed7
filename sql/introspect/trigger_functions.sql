-- Row triggers on the tables of %(schemas)s with the source of their functions: a
-- BEFORE INSERT/UPDATE trigger assigning `NEW.col := now()` stamps a DB-insertion or
-- update time as surely as a column default does (seed §5.1). tgtype bits: 2 BEFORE,
-- 4 INSERT, 16 UPDATE.
SELECT
    n.nspname::text AS schema_name,
    c.relname::text AS table_name,
    t.tgname::text AS trigger_name,
    (t.tgtype & 4) <> 0 AS on_insert,
    (t.tgtype & 16) <> 0 AS on_update,
    p.prosrc AS function_source
FROM pg_catalog.pg_trigger AS t
JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_proc AS p ON p.oid = t.tgfoid
WHERE n.nspname = ANY(%(schemas)s::text[])
  AND NOT t.tgisinternal
  AND (t.tgtype & 2) <> 0
ORDER BY n.nspname, c.relname, t.tgname;
