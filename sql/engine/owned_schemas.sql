-- Every schema a pipeline's owner role owns: what a backup of the pipeline contains.
SELECT n.nspname::text
FROM pg_namespace AS n
JOIN pg_roles AS r ON r.oid = n.nspowner
WHERE r.rolname = %(role)s
ORDER BY n.nspname;
