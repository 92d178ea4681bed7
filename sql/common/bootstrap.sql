-- Run by the admin (DDL) credential on every `dwh migrate`, before any migration.
-- Idempotent: creates the pipeline's roles and schemas and hands them to the owner,
-- so every later migration runs as the owner and never needs superuser rights.
-- Passwords are never written here: the runner sets them from settings afterwards.
CREATE EXTENSION IF NOT EXISTS postgis;

DO $bootstrap$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {owner_name}) THEN
        CREATE ROLE {owner} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {ro_name}) THEN
        CREATE ROLE {ro} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
END
$bootstrap$;

-- The admin must be able to SET ROLE to the owner to apply migrations as it.
GRANT {owner} TO CURRENT_USER;

CREATE SCHEMA IF NOT EXISTS {bronze} AUTHORIZATION {owner};
CREATE SCHEMA IF NOT EXISTS {control} AUTHORIZATION {owner};
ALTER SCHEMA {bronze} OWNER TO {owner};
ALTER SCHEMA {control} OWNER TO {owner};
GRANT CONNECT ON DATABASE {database} TO {owner}, {ro};
REVOKE CREATE ON SCHEMA public FROM {owner}, {ro};

CREATE TABLE IF NOT EXISTS {control}.schema_migrations (
    version     text PRIMARY KEY,
    filename    text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE {control}.schema_migrations OWNER TO {owner};
