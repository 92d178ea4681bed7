-- Role contract before the first run (seed §3, §12): both pipeline roles exist, the owner
-- owns the pipeline's schemas and may write every bronze table, and the read-only role
-- may read every one of them. One row per problem; no row means the contract holds.
SELECT format('role %%s does not exist', r) AS problem
FROM unnest(%(roles)s::text[]) AS r
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r)
UNION ALL
SELECT format('schema %%s is missing or not owned by %%s', s, %(owner)s::text)
FROM unnest(%(schemas)s::text[]) AS s
WHERE NOT EXISTS (
    SELECT
    FROM pg_namespace AS n
    JOIN pg_roles AS o ON o.oid = n.nspowner
    WHERE n.nspname = s AND o.rolname = %(owner)s::text
)
UNION ALL
SELECT format('%%s lacks %%s on %%s.%%s', g.grantee, g.privilege, %(bronze)s::text, t)
FROM unnest(%(tables)s::text[]) AS t
CROSS JOIN (
    VALUES (%(ro)s::text, 'SELECT'), (%(owner)s::text, 'INSERT'), (%(owner)s::text, 'TRUNCATE')
) AS g (grantee, privilege)
WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = g.grantee)
  AND to_regclass(format('%%I.%%I', %(bronze)s::text, t)) IS NOT NULL
  AND NOT has_table_privilege(g.grantee, to_regclass(format('%%I.%%I', %(bronze)s::text, t)), g.privilege)
ORDER BY 1;
