-- Shared by the users and countries datamarts (after their 20_import.sql: dm_kind,
-- dm_entities, dm_peer_source): the datamart state of the target entities, the
-- counters every metric below is computed from (migrations/0500_mart_state.sql,
-- 0510_mart_state_rollups.sql). A big country reads a few thousand cells here
-- instead of every fact it ever had.
CREATE TEMP TABLE dm_totals ON COMMIT DROP AS
SELECT s.entity_id, s.action, s.n, s.invalid_n, s.res_n, s.res_sum
FROM {dwh}.mart_totals AS s
JOIN dm_entities AS e ON s.kind = (SELECT kind FROM dm_kind) AND s.entity_id = e.entity_id;

CREATE TEMP TABLE dm_days ON COMMIT DROP AS
SELECT s.entity_id, s.action, s.date_key, s.n, s.res_n, s.res_sum
FROM {dwh}.mart_days AS s
JOIN dm_entities AS e ON s.kind = (SELECT kind FROM dm_kind) AND s.entity_id = e.entity_id;

CREATE TEMP TABLE dm_hours ON COMMIT DROP AS
SELECT s.entity_id, s.action, s.time_of_week_key, s.n
FROM {dwh}.mart_hours AS s
JOIN dm_entities AS e ON s.kind = (SELECT kind FROM dm_kind) AND s.entity_id = e.entity_id;

CREATE TEMP TABLE dm_hashtags ON COMMIT DROP AS
SELECT s.entity_id, s.action, h.hashtag, s.n
FROM {dwh}.mart_hashtags AS s
JOIN dm_entities AS e ON s.kind = (SELECT kind FROM dm_kind) AND s.entity_id = e.entity_id
JOIN {dwh}.dim_hashtags AS h USING (hashtag_key);

ANALYZE dm_totals;
ANALYZE dm_days;
ANALYZE dm_hours;
ANALYZE dm_hashtags;

-- Peers, as many as the lists show: the 5 with most actions (action 'all'), the 50
-- with most opens and closes of all time (year 0), the 10 of each year; the lists skip
-- peers the source does not list. A user has a few countries: all are read and ranked
-- here. A country has every user who acted in it: each list is read by the (entity,
-- action, year, n) index, only as far as it goes.
CREATE TEMP TABLE dm_peers ON COMMIT DROP AS
WITH
few AS (
    SELECT
        p.entity_id, p.peer_id, p.action, p.year, p.n,
        row_number() OVER (PARTITION BY p.entity_id, p.action, p.year ORDER BY p.n DESC, p.peer_id) AS rank
    FROM dm_entities AS e
    -- Each user's cells by the index (OFFSET 0 keeps it a probe per user): joined as
    -- tables, the planner scanned every user's cells to keep a few thousand users'.
    CROSS JOIN LATERAL (
        SELECT p.entity_id, p.peer_id, p.action, p.year, p.n
        FROM {dwh}.mart_peers AS p
        WHERE p.kind = 'user' AND p.entity_id = e.entity_id
            AND (p.action = 'all' AND p.year = 0 OR p.action IN ('opened', 'closed'))
        OFFSET 0
    ) AS p
    JOIN dm_peer_source AS s ON s.peer_id = p.peer_id
    WHERE (SELECT kind FROM dm_kind) = 'user'
        AND (p.action = 'all' AND p.year = 0 OR s.listed)
),

lists AS (
    SELECT e.entity_id, g.action, g.year::smallint, g.top
    FROM dm_entities AS e
    CROSS JOIN (VALUES ('all', 0, 5), ('opened', 0, 50), ('closed', 0, 50)) AS g (action, year, top)
    WHERE (SELECT kind FROM dm_kind) = 'country'
    UNION ALL
    SELECT DISTINCT d.entity_id, d.action, (d.date_key / 10000)::smallint, 10
    FROM dm_days AS d
    WHERE (SELECT kind FROM dm_kind) = 'country' AND d.action IN ('opened', 'closed')
)

SELECT f.entity_id, f.peer_id, f.action, f.year, f.n
FROM few AS f
WHERE f.rank <= CASE WHEN f.action = 'all' THEN 5 WHEN f.year = 0 THEN 50 ELSE 10 END
UNION ALL
SELECT l.entity_id, p.peer_id, l.action, l.year, p.n
FROM lists AS l
CROSS JOIN LATERAL (
    SELECT p.peer_id, p.n
    FROM {dwh}.mart_peers AS p
    WHERE p.kind = 'country' AND p.entity_id = l.entity_id AND p.action = l.action AND p.year = l.year
        AND EXISTS (
            SELECT FROM dm_peer_source AS s WHERE s.peer_id = p.peer_id AND (s.listed OR l.action = 'all')
        )
    ORDER BY p.n DESC, p.peer_id
    LIMIT l.top
) AS p;

-- Every peer counts but the kind's `no_peer`: an index-only count of the rollup cells.
CREATE TEMP TABLE dm_peer_counts ON COMMIT DROP AS
SELECT e.entity_id, p.peers_active
FROM dm_entities AS e
CROSS JOIN dm_kind AS k
CROSS JOIN LATERAL (
    SELECT count(*) AS peers_active
    FROM {dwh}.mart_peers AS p
    WHERE p.kind = k.kind AND p.entity_id = e.entity_id AND p.action = 'all' AND p.year = 0
        AND p.peer_id IS DISTINCT FROM k.no_peer
) AS p;

-- The names of the peers kept, once per peer.
CREATE TEMP TABLE dm_peer_names ON COMMIT DROP AS
SELECT s.peer_id, s.peer_top, s.peer_profile
FROM dm_peer_source AS s
WHERE s.peer_id IN (SELECT peer_id FROM dm_peers);

DROP VIEW dm_peer_source;

ANALYZE dm_peers;
ANALYZE dm_peer_counts;
ANALYZE dm_peer_names;

-- Not additive, so read from facts for these entities only: the first and the latest
-- action of each kind (on the first and last day the state knows of, by the (key, day)
-- indexes, one probe per key of the entity: min / max of (time, fact id) as the profile
-- defines them), and the middle
-- resolutions for the median (an ordered scan of the (key, resolution) index to the
-- middle). One branch per kind of entity, each on its own index; the other never runs.
CREATE TEMP TABLE dm_extremes ON COMMIT DROP AS
WITH
bounds AS (
    SELECT entity_id, action, min(date_key) AS first_day, max(date_key) AS last_day
    FROM dm_days
    GROUP BY entity_id, action
),

candidates AS (
    SELECT b.entity_id, b.action, b.first_day, b.last_day, e.keys, k.kind
    FROM bounds AS b
    JOIN dm_entities AS e USING (entity_id)
    CROSS JOIN dm_kind AS k
),

day_facts AS NOT MATERIALIZED (
    SELECT
        f.actor_user_key, f.country_key, f.action_date_key, f.action_at, f.fact_id, f.note_id,
        CASE WHEN f.action = 'closed' AND NOT f.is_valid_transition THEN 'invalid_close' ELSE f.action END
            AS action
    FROM {dwh}.facts AS f
)

SELECT
    c.entity_id, c.action,
    fa.action_at AS first_at, fa.note_id AS first_note, la.action_at AS last_at, la.note_id AS last_note
FROM candidates AS c
CROSS JOIN LATERAL (
    SELECT x.action_at, x.fact_id, x.note_id
    FROM unnest(c.keys) AS k (key)
    CROSS JOIN LATERAL (
        (
            SELECT f.action_at, f.fact_id, f.note_id
            FROM day_facts AS f
            WHERE c.kind = 'user' AND f.actor_user_key = k.key AND f.action_date_key = c.first_day
                AND f.action = c.action
            ORDER BY f.action_at, f.fact_id
            LIMIT 1
        )
        UNION ALL
        (
            SELECT f.action_at, f.fact_id, f.note_id
            FROM day_facts AS f
            WHERE c.kind = 'country' AND f.country_key = k.key AND f.action_date_key = c.first_day
                AND f.action = c.action
            ORDER BY f.action_at, f.fact_id
            LIMIT 1
        )
    ) AS x
    ORDER BY x.action_at, x.fact_id
    LIMIT 1
) AS fa
CROSS JOIN LATERAL (
    SELECT x.action_at, x.fact_id, x.note_id
    FROM unnest(c.keys) AS k (key)
    CROSS JOIN LATERAL (
        (
            SELECT f.action_at, f.fact_id, f.note_id
            FROM day_facts AS f
            WHERE c.kind = 'user' AND f.actor_user_key = k.key AND f.action_date_key = c.last_day
                AND f.action = c.action
            ORDER BY f.action_at DESC, f.fact_id DESC
            LIMIT 1
        )
        UNION ALL
        (
            SELECT f.action_at, f.fact_id, f.note_id
            FROM day_facts AS f
            WHERE c.kind = 'country' AND f.country_key = k.key AND f.action_date_key = c.last_day
                AND f.action = c.action
            ORDER BY f.action_at DESC, f.fact_id DESC
            LIMIT 1
        )
    ) AS x
    ORDER BY x.action_at DESC, x.fact_id DESC
    LIMIT 1
) AS la;

-- percentile_cont over the one or two middle values is the same float arithmetic as
-- over all of them. A user's versions are several keys: their resolutions are sorted
-- (a user has few); a country's are read in index order.
CREATE TEMP TABLE dm_medians ON COMMIT DROP AS
WITH
counts AS (
    SELECT t.entity_id, sum(t.res_n)::integer AS c, e.keys, k.kind
    FROM dm_totals AS t
    JOIN dm_entities AS e USING (entity_id)
    CROSS JOIN dm_kind AS k
    GROUP BY t.entity_id, e.keys, k.kind
    HAVING sum(t.res_n) > 0
)

SELECT c.entity_id, m.median
FROM counts AS c
CROSS JOIN LATERAL (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY mid.v) AS median
    FROM (
        (
            SELECT f.days_to_resolution::float8 AS v
            FROM {dwh}.facts AS f
            WHERE c.kind = 'user' AND f.actor_user_key = ANY (c.keys) AND f.days_to_resolution IS NOT NULL
            ORDER BY f.days_to_resolution
            OFFSET (c.c - 1) / 2
            LIMIT 2 - c.c % 2
        )
        UNION ALL
        (
            SELECT f.days_to_resolution::float8 AS v
            FROM {dwh}.facts AS f
            WHERE c.kind = 'country' AND f.country_key = c.keys[1] AND f.days_to_resolution IS NOT NULL
            ORDER BY f.days_to_resolution
            OFFSET (c.c - 1) / 2
            LIMIT 2 - c.c % 2
        )
    ) AS mid
) AS m;

ANALYZE dm_extremes;
ANALYZE dm_medians;
