-- PostGIS's own register of geometry columns (type and SRID) for %(schemas)s; `dwh init`
-- runs it only where the postgis extension is installed.
SELECT
    f_table_schema::text AS schema_name,
    f_table_name::text AS table_name,
    f_geometry_column::text AS column_name,
    type::text AS geometry_type,
    srid
FROM geometry_columns
WHERE f_table_schema = ANY(%(schemas)s::text[])
ORDER BY 1, 2, 3;
