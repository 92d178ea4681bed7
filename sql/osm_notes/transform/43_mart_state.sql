-- Bring the datamart state (migrations/0500_mart_state.sql) in line with the facts just
-- written: + the rebuilt notes' facts now, - the same notes' facts before
-- (39_mart_state_before.sql), per cell; cells that fall to zero go. A full state
-- (first build, rebuild, or a warehouse that had facts before the state existed) is
-- all facts, into emptied tables. Each table's cells for users, countries and the
-- whole come from one pass (grouping sets) over the changed facts.
DO $full_state$
BEGIN
    IF (SELECT full_state FROM etl_mart_mode) THEN
        TRUNCATE {dwh}.mart_totals, {dwh}.mart_days, {dwh}.mart_hours, {dwh}.mart_peers,
            {dwh}.mart_hashtags, {dwh}.mart_opened_unclosed, {dwh}.mart_notes;
        -- The largest table fills faster without its second index (45_indexes.sql).
        DROP INDEX IF EXISTS {dwh}.mart_peers_top_idx;
        UPDATE {dwh}.mart_state_built SET built = true;
    END IF;
END
$full_state$;

CREATE TEMP TABLE etl_mart_delta ON COMMIT DROP AS
SELECT 1 AS sign, m.*
FROM etl_mart_facts AS m
WHERE NOT (SELECT full_state FROM etl_mart_mode)
UNION ALL
SELECT -1, b.*
FROM etl_mart_before AS b
UNION ALL
SELECT
    1,
    f.fact_id,
    f.note_id,
    CASE WHEN f.action = 'closed' AND NOT f.is_valid_transition THEN 'invalid_close' ELSE f.action END,
    f.action_date_key,
    f.action_time_of_week_key,
    u.user_id,
    c.country_id,
    f.days_to_resolution,
    NOT f.is_valid_transition
FROM {dwh}.facts AS f
JOIN {dwh}.dim_users AS u ON u.user_key = f.actor_user_key
JOIN {dwh}.dim_countries AS c ON c.country_key = f.country_key
WHERE (SELECT full_state FROM etl_mart_mode);

DROP VIEW etl_mart_facts;

ANALYZE etl_mart_delta;

-- Cells that fell to zero, per table, deleted after each upsert.
CREATE TEMP TABLE etl_mart_zero (
    kind text, entity_id integer, action text, detail integer
) ON COMMIT DROP;

-- Kind 'user' of mart_totals includes the anonymous member (-1): the global row counts
-- its actions. The other tables have no row for it (it has no datamart row).
CREATE TEMP TABLE etl_mart_cells ON COMMIT DROP AS
SELECT
        CASE WHEN grouping(user_id) = 0 THEN 'user' WHEN grouping(country_id) = 0 THEN 'country' ELSE 'global' END
            AS kind,
        CASE WHEN grouping(user_id) = 0 THEN user_id WHEN grouping(country_id) = 0 THEN country_id ELSE 0 END
            AS entity_id,
    action,
    sum(sign)::integer AS n,
    coalesce(sum(sign) FILTER (WHERE invalid), 0)::integer AS invalid_n,
    coalesce(sum(sign) FILTER (WHERE days IS NOT NULL), 0)::integer AS res_n,
    coalesce(sum(sign * days), 0) AS res_sum
FROM etl_mart_delta
GROUP BY GROUPING SETS ((user_id, action), (country_id, action), (action));

-- A full state goes into the emptied table in key order (appends to its index).
INSERT INTO {dwh}.mart_totals (kind, entity_id, action, n, invalid_n, res_n, res_sum)
SELECT kind, entity_id, action, n, invalid_n, res_n, res_sum
FROM etl_mart_cells
WHERE (SELECT full_state FROM etl_mart_mode) AND (n, invalid_n, res_n, res_sum) <> (0, 0, 0, 0)
ORDER BY kind, entity_id, action;

WITH written AS (
    INSERT INTO {dwh}.mart_totals AS t (kind, entity_id, action, n, invalid_n, res_n, res_sum)
    SELECT kind, entity_id, action, n, invalid_n, res_n, res_sum
    FROM etl_mart_cells
    WHERE NOT (SELECT full_state FROM etl_mart_mode) AND (n, invalid_n, res_n, res_sum) <> (0, 0, 0, 0)
    ON CONFLICT (kind, entity_id, action) DO UPDATE SET
        n = t.n + excluded.n,
        invalid_n = t.invalid_n + excluded.invalid_n,
        res_n = t.res_n + excluded.res_n,
        res_sum = t.res_sum + excluded.res_sum
    RETURNING t.kind, t.entity_id, t.action, t.n
)

INSERT INTO etl_mart_zero
SELECT kind, entity_id, action, NULL FROM written WHERE n = 0;

DELETE FROM {dwh}.mart_totals AS t
USING etl_mart_zero AS z
WHERE t.kind = z.kind AND t.entity_id = z.entity_id AND t.action = z.action;
DROP TABLE etl_mart_cells;
TRUNCATE etl_mart_zero;

CREATE TEMP TABLE etl_mart_cells ON COMMIT DROP AS
SELECT
        CASE WHEN grouping(user_id) = 0 THEN 'user' WHEN grouping(country_id) = 0 THEN 'country' ELSE 'global' END
            AS kind,
        CASE WHEN grouping(user_id) = 0 THEN user_id WHEN grouping(country_id) = 0 THEN country_id ELSE 0 END
            AS entity_id,
    action,
    date_key,
    sum(sign)::integer AS n,
    coalesce(sum(sign) FILTER (WHERE days IS NOT NULL), 0)::integer AS res_n,
    coalesce(sum(sign * days), 0) AS res_sum
FROM etl_mart_delta
GROUP BY GROUPING SETS ((user_id, action, date_key), (country_id, action, date_key), (action, date_key));

-- A full state goes into the emptied table in key order (appends to its index).
INSERT INTO {dwh}.mart_days (kind, entity_id, action, date_key, n, res_n, res_sum)
SELECT kind, entity_id, action, date_key, n, res_n, res_sum
FROM etl_mart_cells
WHERE (SELECT full_state FROM etl_mart_mode) AND (n, res_n, res_sum) <> (0, 0, 0) AND (kind <> 'user' OR entity_id <> -1)
ORDER BY kind, entity_id, action, date_key;

WITH written AS (
    INSERT INTO {dwh}.mart_days AS t (kind, entity_id, action, date_key, n, res_n, res_sum)
    SELECT kind, entity_id, action, date_key, n, res_n, res_sum
    FROM etl_mart_cells
    WHERE NOT (SELECT full_state FROM etl_mart_mode) AND (n, res_n, res_sum) <> (0, 0, 0) AND (kind <> 'user' OR entity_id <> -1)
    ON CONFLICT (kind, entity_id, action, date_key) DO UPDATE SET
        n = t.n + excluded.n,
        res_n = t.res_n + excluded.res_n,
        res_sum = t.res_sum + excluded.res_sum
    RETURNING t.kind, t.entity_id, t.action, t.date_key, t.n
)

INSERT INTO etl_mart_zero
SELECT kind, entity_id, action, date_key FROM written WHERE n = 0;

DELETE FROM {dwh}.mart_days AS t
USING etl_mart_zero AS z
WHERE t.kind = z.kind AND t.entity_id = z.entity_id AND t.action = z.action AND t.date_key = z.detail;
DROP TABLE etl_mart_cells;
TRUNCATE etl_mart_zero;

CREATE TEMP TABLE etl_mart_cells ON COMMIT DROP AS
SELECT
        CASE WHEN grouping(user_id) = 0 THEN 'user' WHEN grouping(country_id) = 0 THEN 'country' ELSE 'global' END
            AS kind,
        CASE WHEN grouping(user_id) = 0 THEN user_id WHEN grouping(country_id) = 0 THEN country_id ELSE 0 END
            AS entity_id,
    action,
    time_of_week_key,
    sum(sign)::integer AS n
FROM etl_mart_delta
GROUP BY GROUPING SETS (
    (user_id, action, time_of_week_key), (country_id, action, time_of_week_key), (action, time_of_week_key)
);

-- A full state goes into the emptied table in key order (appends to its index).
INSERT INTO {dwh}.mart_hours (kind, entity_id, action, time_of_week_key, n)
SELECT kind, entity_id, action, time_of_week_key, n
FROM etl_mart_cells
WHERE (SELECT full_state FROM etl_mart_mode) AND n <> 0 AND (kind <> 'user' OR entity_id <> -1)
ORDER BY kind, entity_id, action, time_of_week_key;

WITH written AS (
    INSERT INTO {dwh}.mart_hours AS t (kind, entity_id, action, time_of_week_key, n)
    SELECT kind, entity_id, action, time_of_week_key, n
    FROM etl_mart_cells
    WHERE NOT (SELECT full_state FROM etl_mart_mode) AND n <> 0 AND (kind <> 'user' OR entity_id <> -1)
    ON CONFLICT (kind, entity_id, action, time_of_week_key) DO UPDATE SET
        n = t.n + excluded.n
    RETURNING t.kind, t.entity_id, t.action, t.time_of_week_key, t.n
)

INSERT INTO etl_mart_zero
SELECT kind, entity_id, action, time_of_week_key FROM written WHERE n = 0;

DELETE FROM {dwh}.mart_hours AS t
USING etl_mart_zero AS z
WHERE t.kind = z.kind AND t.entity_id = z.entity_id AND t.action = z.action AND t.time_of_week_key = z.detail;
DROP TABLE etl_mart_cells;
TRUNCATE etl_mart_zero;

-- A (user, country) pair's cell is the user's row for the country and the country's
-- row for the user. Only what the lists read (migrations/0510): opens and closes per
-- year and in all (year 0), and every action in all (action 'all', year 0).
CREATE TEMP TABLE etl_mart_peer_zero (
    kind text, entity_id integer, peer_id integer, action text, year smallint
) ON COMMIT DROP;

CREATE TEMP TABLE etl_mart_cells ON COMMIT DROP AS
SELECT k.kind, k.entity_id, k.peer_id, p.action, p.year, p.n
FROM (
    SELECT
        user_id,
        country_id,
        CASE WHEN grouping(action) = 0 THEN action ELSE 'all' END AS action,
        CASE WHEN grouping(year) = 0 THEN year ELSE 0 END::smallint AS year,
        -- a cell of another action by year is no list's: 0, and so not kept
        CASE
            WHEN grouping(action) = 0 AND action NOT IN ('opened', 'closed') THEN 0 ELSE sum(sign)
        END::integer AS n
    FROM (SELECT d.*, d.date_key / 10000 AS year FROM etl_mart_delta AS d) AS delta
    GROUP BY GROUPING SETS ((user_id, country_id, action, year), (user_id, country_id, action), (user_id, country_id))
) AS p
CROSS JOIN LATERAL (
    VALUES ('user', p.user_id, p.country_id), ('country', p.country_id, p.user_id)
) AS k (kind, entity_id, peer_id);

-- A full state goes into the emptied table in key order (appends to its index).
INSERT INTO {dwh}.mart_peers (kind, entity_id, peer_id, action, year, n)
SELECT kind, entity_id, peer_id, action, year, n
FROM etl_mart_cells
WHERE (SELECT full_state FROM etl_mart_mode) AND n <> 0 AND (kind <> 'user' OR entity_id <> -1)
ORDER BY kind, entity_id, peer_id, action, year;

WITH written AS (
    INSERT INTO {dwh}.mart_peers AS t (kind, entity_id, peer_id, action, year, n)
    SELECT kind, entity_id, peer_id, action, year, n
    FROM etl_mart_cells
    WHERE NOT (SELECT full_state FROM etl_mart_mode) AND n <> 0 AND (kind <> 'user' OR entity_id <> -1)
    ON CONFLICT (kind, entity_id, peer_id, action, year) DO UPDATE SET
        n = t.n + excluded.n
    RETURNING t.kind, t.entity_id, t.peer_id, t.action, t.year, t.n
)

INSERT INTO etl_mart_peer_zero
SELECT kind, entity_id, peer_id, action, year FROM written WHERE n = 0;

DELETE FROM {dwh}.mart_peers AS t
USING etl_mart_peer_zero AS z
WHERE t.kind = z.kind AND t.entity_id = z.entity_id AND t.peer_id = z.peer_id AND t.action = z.action
    AND t.year = z.year;
DROP TABLE etl_mart_cells;
TRUNCATE etl_mart_peer_zero;

-- Hashtags: the bridge rows of the facts now, and of the facts before.
CREATE TEMP TABLE etl_mart_cells ON COMMIT DROP AS
WITH
tagged AS (
    SELECT d.sign, d.user_id, d.country_id, d.action, b.hashtag_key
    FROM etl_mart_delta AS d
    JOIN {dwh}.fact_hashtags AS b USING (fact_id)
    WHERE d.sign = 1
    UNION ALL
    SELECT d.sign, d.user_id, d.country_id, d.action, b.hashtag_key
    FROM etl_mart_delta AS d
    JOIN etl_mart_before_hashtags AS b USING (fact_id)
    WHERE d.sign = -1
)

SELECT
        CASE WHEN grouping(user_id) = 0 THEN 'user' WHEN grouping(country_id) = 0 THEN 'country' ELSE 'global' END
            AS kind,
        CASE WHEN grouping(user_id) = 0 THEN user_id WHEN grouping(country_id) = 0 THEN country_id ELSE 0 END
            AS entity_id,
    action,
    hashtag_key,
    sum(sign)::integer AS n
FROM tagged
GROUP BY GROUPING SETS ((user_id, action, hashtag_key), (country_id, action, hashtag_key), (action, hashtag_key));

-- A full state goes into the emptied table in key order (appends to its index).
INSERT INTO {dwh}.mart_hashtags (kind, entity_id, action, hashtag_key, n)
SELECT kind, entity_id, action, hashtag_key, n
FROM etl_mart_cells
WHERE (SELECT full_state FROM etl_mart_mode) AND n <> 0 AND (kind <> 'user' OR entity_id <> -1)
ORDER BY kind, entity_id, action, hashtag_key;

WITH written AS (
    INSERT INTO {dwh}.mart_hashtags AS t (kind, entity_id, action, hashtag_key, n)
    SELECT kind, entity_id, action, hashtag_key, n
    FROM etl_mart_cells
    WHERE NOT (SELECT full_state FROM etl_mart_mode) AND n <> 0 AND (kind <> 'user' OR entity_id <> -1)
    ON CONFLICT (kind, entity_id, action, hashtag_key) DO UPDATE SET
        n = t.n + excluded.n
    RETURNING t.kind, t.entity_id, t.action, t.hashtag_key, t.n
)

INSERT INTO etl_mart_zero
SELECT kind, entity_id, action, hashtag_key FROM written WHERE n = 0;

DELETE FROM {dwh}.mart_hashtags AS t
USING etl_mart_zero AS z
WHERE t.kind = z.kind AND t.entity_id = z.entity_id AND t.action = z.action AND t.hashtag_key = z.detail;
DROP TABLE etl_mart_cells;
TRUNCATE etl_mart_zero;

-- Notes a user opened and did not close themselves: per (note, user), before and now
-- (each side holds whole notes, so the difference is exact).
WITH
per_note AS (
    SELECT sign, user_id, bool_or(action = 'opened') AND NOT bool_or(action = 'closed') AS unclosed
    FROM etl_mart_delta
    WHERE user_id <> -1
    GROUP BY sign, note_id, user_id
),

cells AS (
    SELECT user_id, sum(sign)::integer AS n
    FROM per_note
    WHERE unclosed
    GROUP BY user_id
),

written AS (
    INSERT INTO {dwh}.mart_opened_unclosed AS t (user_id, n)
    SELECT user_id, n FROM cells WHERE n <> 0
    ON CONFLICT (user_id) DO UPDATE SET n = t.n + excluded.n
    RETURNING t.user_id, t.n
)

INSERT INTO etl_mart_zero
SELECT 'user', user_id, NULL, NULL FROM written WHERE n = 0;

DELETE FROM {dwh}.mart_opened_unclosed AS t
USING etl_mart_zero AS z
WHERE t.user_id = z.entity_id;

TRUNCATE etl_mart_zero;

-- Notes opened, per opener and per country, state and application: the touched notes'
-- dim_notes rows now, less the same notes' rows before (39_mart_state_before.sql); a
-- full state counts every note.
CREATE TEMP TABLE etl_mart_cells ON COMMIT DROP AS
WITH
delta AS (
    SELECT 1 AS sign, m.user_id, m.country_id, m.status, m.application_key
    FROM etl_mart_notes AS m
    WHERE NOT (SELECT full_state FROM etl_mart_mode)
    UNION ALL
    SELECT -1, b.user_id, b.country_id, b.status, b.application_key
    FROM etl_mart_before_notes AS b
    UNION ALL
    SELECT 1, u.user_id, c.country_id, n.status, n.application_key
    FROM {dwh}.dim_notes AS n
    JOIN {dwh}.dim_users AS u ON u.user_key = n.opener_user_key
    JOIN {dwh}.dim_countries AS c ON c.country_key = n.country_key
    WHERE (SELECT full_state FROM etl_mart_mode)
)

SELECT
    CASE WHEN grouping(user_id) = 0 THEN 'user' ELSE 'country' END AS kind,
    CASE WHEN grouping(user_id) = 0 THEN user_id ELSE country_id END AS entity_id,
    status,
    application_key,
    sum(sign)::integer AS n
FROM delta
GROUP BY GROUPING SETS ((user_id, status, application_key), (country_id, status, application_key));

DROP VIEW etl_mart_notes;

WITH written AS (
    INSERT INTO {dwh}.mart_notes AS t (kind, entity_id, status, application_key, n)
    SELECT kind, entity_id, status, application_key, n
    FROM etl_mart_cells
    WHERE n <> 0 AND (kind <> 'user' OR entity_id <> -1)
    ORDER BY kind, entity_id, status, application_key
    ON CONFLICT (kind, entity_id, status, application_key) DO UPDATE SET n = t.n + excluded.n
    RETURNING t.kind, t.entity_id, t.status, t.application_key, t.n
)

-- etl_mart_zero holds the state in `action` and the application in `detail`
INSERT INTO etl_mart_zero
SELECT kind, entity_id, status, application_key FROM written WHERE n = 0;

DELETE FROM {dwh}.mart_notes AS t
USING etl_mart_zero AS z
WHERE t.kind = z.kind AND t.entity_id = z.entity_id AND t.status = z.action AND t.application_key = z.detail;
DROP TABLE etl_mart_cells;
