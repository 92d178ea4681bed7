-- The SQL name of a type oid, as a column definition spells it.
SELECT format_type(%(oid)s::oid, NULL);
