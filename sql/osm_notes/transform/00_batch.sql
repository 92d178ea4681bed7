-- The batch of this run: bronze rows that reached the warehouse in (lower, upper].
--
-- lower: the upper bound of the last succeeded run, or -infinity when facts is empty
-- (first run: build everything). upper: now, lowered below the start of any other
-- open transaction, because a load still in flight stamps `_dwh_loaded_at` with its
-- start time and commits later: bounding below it puts its rows in the next window
-- instead of skipping them forever. Sessions of other roles are invisible here, but
-- only this pipeline's owner can write bronze (an open transaction of the owner that
-- loads nothing, e.g. a datamart refresh, only delays rows to the next run).
-- Must come before anything else reads pg_stat_activity (read once per transaction)
-- or bronze (every later read must see at least what this one saw).

-- LOCAL: ends with the transaction. Sorts of a first build stay in memory; JIT costs
-- more than it saves on these statements; an increment touches a few thousand notes
-- of millions, which the planner should fetch by index (SSD-like page costs) rather
-- than by scanning facts.
SET LOCAL work_mem = '256MB';
SET LOCAL jit = off;
SET LOCAL random_page_cost = 1.1;

CREATE TEMP TABLE etl_batch ON COMMIT DROP AS
WITH
previous AS (
    SELECT max(upper_bound) AS upper_bound
    FROM {control}.transform_runs
    WHERE status = 'succeeded'
),

open_transactions AS (
    SELECT min(xact_start) AS oldest
    FROM pg_stat_activity
    WHERE datname = current_database()
        AND backend_type = 'client backend'
        AND pid <> pg_backend_pid()
        AND xact_start IS NOT NULL
),

facts_state AS (
    SELECT NOT EXISTS (SELECT FROM {dwh}.facts) AS empty
),

bounds AS (
    SELECT
        s.empty AS first_run,
        CASE WHEN s.empty THEN '-infinity'::timestamptz ELSE coalesce(p.upper_bound, '-infinity') END
            AS lower_bound,
        least(clock_timestamp(), o.oldest - interval '1 microsecond') AS upper_bound
    FROM previous AS p, open_transactions AS o, facts_state AS s
)

SELECT
    first_run,
    lower_bound,
    -- never behind the last run, so the recorded watermark only moves forward
    greatest(lower_bound, upper_bound) AS upper_bound,
    clock_timestamp() AS started_at
FROM bounds;

CREATE TEMP TABLE etl_stats (
    name   text PRIMARY KEY,
    value  bigint NOT NULL
) ON COMMIT DROP;
