-- The catalog's source tables the connected role may write or owns, one row each with
-- what it may do. The extract only reads: a role that can write turns a bug in a catalog
-- expression (or a stolen flow credential) into damage to somebody else's OLTP.
SELECT
    format('%%I.%%I', n.nspname, c.relname) AS relation,
    array_to_string(
        ARRAY(
            SELECT p.privilege
            FROM unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) WITH ORDINALITY AS p (privilege, i)
            WHERE has_table_privilege(c.oid, p.privilege)
            ORDER BY p.i
        ),
        ', '
    ) || CASE WHEN pg_has_role(c.relowner, 'USAGE') THEN ' (it owns the table)' ELSE '' END AS rights
FROM unnest(%(schemas)s::text[], %(tables)s::text[]) AS t (schema_name, table_name)
JOIN pg_namespace AS n ON n.nspname = t.schema_name
JOIN pg_class AS c ON c.relnamespace = n.oid AND c.relname = t.table_name
WHERE pg_has_role(c.relowner, 'USAGE')
   OR has_table_privilege(c.oid, 'INSERT')
   OR has_table_privilege(c.oid, 'UPDATE')
   OR has_table_privilege(c.oid, 'DELETE')
   OR has_table_privilege(c.oid, 'TRUNCATE')
ORDER BY 1;
