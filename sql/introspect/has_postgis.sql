-- Whether the connected database has PostGIS (and so a geometry_columns view).
SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'postgis');
