-- Run by the admin (DDL) credential on every `dwh migrate osm_notes`, right after
-- sql/common/bootstrap.sql: the owner role cannot create schemas in the database, and
-- the star schema and datamarts live in their own schema, next to bronze and control.
CREATE SCHEMA IF NOT EXISTS {dwh} AUTHORIZATION {owner};
ALTER SCHEMA {dwh} OWNER TO {owner};
