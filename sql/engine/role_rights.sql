-- Rights of the connected role beyond what one pipeline needs (seed §12), one row per
-- problem, most serious first; no row means the role is fit to run the flows. The pipeline
-- needs its own schemas (%(schemas)s), CONNECT and TEMPORARY on the database (staging
-- tables), adding and reading lines of its backup ledger (%(ledger)s) and never changing
-- them, and at most membership of its own owner role (%(roles)s); anything else is refused.
-- Rights PUBLIC holds (reading PostGIS's spatial_ref_sys, the catalogs) every role
-- has, so they are not counted against this one.
WITH me AS (
    SELECT oid, rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls
    FROM pg_roles
    WHERE rolname = current_user
),

foreign_schemas AS (
    SELECT n.oid, n.nspname, n.nspowner
    FROM pg_namespace AS n
    WHERE n.nspname <> ALL(%(schemas)s::text[])
      AND n.nspname !~ '^pg_'
      AND n.nspname <> 'information_schema'
)

SELECT 1 AS rank, 'it is a superuser' AS problem FROM me WHERE rolsuper
UNION ALL
SELECT 2, 'it may create roles (CREATEROLE)' FROM me WHERE rolcreaterole
UNION ALL
SELECT 2, 'it may create databases (CREATEDB)' FROM me WHERE rolcreatedb
UNION ALL
SELECT 2, 'it may start replication (REPLICATION)' FROM me WHERE rolreplication
UNION ALL
SELECT 2, 'it bypasses row-level security (BYPASSRLS)' FROM me WHERE rolbypassrls
UNION ALL
SELECT 3, format('it is a member of role %%I', r.rolname)
FROM pg_roles AS r, me
WHERE r.oid <> me.oid
  AND r.rolname <> ALL(%(roles)s::text[])
  AND pg_has_role(me.oid, r.oid, 'MEMBER')
UNION ALL
SELECT 4, format('it owns database %%I', d.datname)
FROM pg_database AS d, me
WHERE d.datname = current_database() AND d.datdba = me.oid
UNION ALL
SELECT 4, format('it may create schemas in database %%I', current_database())
FROM me
WHERE has_database_privilege(me.oid, current_database(), 'CREATE')
UNION ALL
SELECT 5, format('it owns or may create objects in schema %%I', s.nspname)
FROM foreign_schemas AS s, me
WHERE s.nspowner = me.oid OR has_schema_privilege(me.oid, s.oid, 'CREATE')
UNION ALL
SELECT 5, format('it may change or remove lines of the backup ledger %%I.backups', %(ledger)s::text)
FROM me
JOIN pg_namespace AS n ON n.nspname = %(ledger)s
LEFT JOIN pg_class AS c ON c.relnamespace = n.oid AND c.relname = 'backups'
WHERE n.nspowner = me.oid
   OR has_schema_privilege(me.oid, n.oid, 'CREATE')
   OR has_table_privilege(me.oid, c.oid, 'UPDATE')
   OR has_table_privilege(me.oid, c.oid, 'DELETE')
   OR has_table_privilege(me.oid, c.oid, 'TRUNCATE')
UNION ALL
SELECT 6, format('it has %%s on %%I.%%I', p.privilege, s.nspname, c.relname)
FROM pg_class AS c
JOIN foreign_schemas AS s ON s.oid = c.relnamespace
CROSS JOIN me
CROSS JOIN (VALUES ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE')) AS p (privilege)
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND has_table_privilege(me.oid, c.oid, p.privilege)
  AND NOT EXISTS (
      SELECT FROM aclexplode(c.relacl) AS a
      WHERE a.grantee = 0 AND a.privilege_type = p.privilege
  )
ORDER BY rank, problem;
