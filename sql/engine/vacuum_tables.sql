-- Tables the pipeline's owner owns: what weekly VACUUM ANALYZE covers.
SELECT format('%%I.%%I', n.nspname, c.relname)
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_roles AS r ON r.oid = c.relowner
WHERE r.rolname = %(role)s AND c.relkind IN ('r', 'p', 'm')
ORDER BY 1;
