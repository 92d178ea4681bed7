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

-- The backup ledger: the sha256 of every archive, written when it is taken. The schema
-- and table belong to the admin; the owner may add a line and read them, never change
-- or remove one, so an archive replaced in storage (by anyone holding the storage keys)
-- no longer matches its line and `dwh restore` refuses it. Not in any backup: the owner
-- does not own it.
CREATE SCHEMA IF NOT EXISTS {ledger};
CREATE TABLE IF NOT EXISTS {ledger}.backups (
    key       text PRIMARY KEY,
    sha256    text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{{64}}$'),
    bytes     bigint NOT NULL CHECK (bytes > 0),
    taken_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON SCHEMA {ledger} FROM PUBLIC;
REVOKE ALL ON {ledger}.backups FROM PUBLIC, {owner}, {ro};
GRANT USAGE ON SCHEMA {ledger} TO {owner}, {ro};
GRANT SELECT, INSERT ON {ledger}.backups TO {owner};
GRANT SELECT ON {ledger}.backups TO {ro};
