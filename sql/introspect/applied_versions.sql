-- Migration versions already applied to the pipeline's warehouse schemas.
SELECT version FROM {control}.schema_migrations ORDER BY version;
