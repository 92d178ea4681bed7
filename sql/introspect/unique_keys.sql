-- PRIMARY KEY and UNIQUE constraints of the tables of %(schemas)s with their columns in
-- constraint order: the natural-key candidates for ON CONFLICT (seed §5.3). Primary
-- keys first, then unique constraints by name, so the choice is stable.
SELECT
    n.nspname::text AS schema_name,
    c.relname::text AS table_name,
    k.conname::text AS constraint_name,
    k.contype = 'p' AS is_primary,
    array_agg(a.attname::text ORDER BY u.ord) AS columns
FROM pg_catalog.pg_constraint AS k
JOIN pg_catalog.pg_class AS c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(k.conkey) WITH ORDINALITY AS u (attnum, ord)
JOIN pg_catalog.pg_attribute AS a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
WHERE n.nspname = ANY(%(schemas)s::text[])
  AND k.contype IN ('p', 'u')
GROUP BY n.nspname, c.relname, k.conname, k.contype
ORDER BY n.nspname, c.relname, k.contype = 'p' DESC, k.conname;
