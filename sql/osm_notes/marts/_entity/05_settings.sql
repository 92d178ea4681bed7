-- Shared by the users and countries datamarts, first of their steps; every session of a
-- shared refresh (users/PARALLEL) runs it too. LOCAL: ends with the refresh.
-- The aggregates stay in memory; the facts of a few thousand marked entities are
-- fetched by index (SSD-like page costs), not by a scan.
SET LOCAL work_mem = '256MB';
SET LOCAL jit = off;
SET LOCAL random_page_cost = 1.1;

-- The profiles (about 11 kB each) are TOAST-compressed as the temp tables holding them
-- are written: lz4 does it in about half the time pglz takes. A server built without
-- lz4 keeps pglz.
DO $lz4$
BEGIN
    PERFORM set_config('default_toast_compression', 'lz4', true);
EXCEPTION WHEN invalid_parameter_value THEN
    NULL;
END
$lz4$;
