-- Upper bound of an incremental extract, on the SOURCE clock (it stamps the watermark
-- column). A transaction still open may commit rows stamped with its start time later,
-- after our snapshot; bounding below the oldest open transaction's start means such a
-- row is extracted next run instead of being skipped forever. Sessions whose activity
-- we cannot see (missing pg_read_all_stats) are counted so the caller can refuse.
SELECT
    clock_timestamp() AS now,
    min(xact_start) FILTER (WHERE xact_start IS NOT NULL) AS oldest_open,
    count(*) FILTER (WHERE query = '<insufficient privilege>') AS invisible
FROM pg_stat_activity
WHERE datname = current_database()
  AND backend_type = 'client backend'
  AND pid <> pg_backend_pid();
-- Every open transaction counts, even read-only ones such as a parallel extract of
-- another table: we cannot tell from here that a transaction will never write, and a
-- bound that is a little early only delays rows to the next run, it never loses them.
