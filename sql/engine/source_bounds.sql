-- Upper bound of an incremental extract, on the SOURCE clock (it stamps the watermark
-- column). A transaction still open may commit rows stamped with its start time later,
-- after our snapshot; bounding below the oldest open transaction's start means such a
-- row is extracted next run instead of being skipped forever. The session holding that
-- oldest transaction is returned too, so the hold-back can be reported and alerted on
-- (never skipped past silently). Sessions whose activity we cannot see (missing
-- pg_read_all_stats) are counted so the caller can refuse.
WITH sessions AS (
    SELECT pid, application_name, state, xact_start, query
    FROM pg_stat_activity
    WHERE datname = current_database()
      AND backend_type = 'client backend'
      AND pid <> pg_backend_pid()
),
oldest AS (
    SELECT pid, application_name, state, xact_start
    FROM sessions
    WHERE xact_start IS NOT NULL
    ORDER BY xact_start, pid
    LIMIT 1
)
SELECT
    clock_timestamp() AS now,
    (SELECT xact_start FROM oldest) AS oldest_open,
    (SELECT count(*) FROM sessions WHERE query = '<insufficient privilege>') AS invisible,
    (SELECT pid FROM oldest) AS holder_pid,
    (SELECT application_name FROM oldest) AS holder_application,
    (SELECT state FROM oldest) AS holder_state;
-- Every open transaction counts, even read-only ones such as a parallel extract of
-- another table: we cannot tell from here that a transaction will never write, and a
-- bound that is a little early only delays rows to the next run, it never loses them.
