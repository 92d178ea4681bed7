-- The source's keys of one chunk, streamed in by COPY; typed like bronze's key columns.
CREATE TEMP TABLE dwh_source_keys ON COMMIT DROP AS
SELECT {keys} FROM {bronze_table} WITH NO DATA;
