-- LOCAL: ends with the refresh; the aggregates stay in memory.
SET LOCAL work_mem = '256MB';
SET LOCAL jit = off;

-- The global datamart is one row, recomputed in full on every refresh.
CREATE TEMP TABLE dm_targets ON COMMIT DROP AS
SELECT 1 AS id, NULL::bigint AS mark;
