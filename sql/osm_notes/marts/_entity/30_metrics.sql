-- Shared by the users and countries datamarts: the datamart columns of each target
-- entity with at least one action, from the state imported by 25_state.sql and the
-- entity's 20_import.sql (peers: the countries of a user, the users of a country).
-- dbt-style: one logic CTE per metric family, final select. Each datamart's
-- 38_write.sql writes these rows with its own key and name columns.
CREATE TEMP TABLE dm_metrics ON COMMIT DROP AS
WITH
totals AS (
    SELECT
        entity_id,
        sum(n) AS actions,
        coalesce(sum(n) FILTER (WHERE action = 'opened'), 0) AS opened,
        coalesce(sum(n) FILTER (WHERE action = 'commented'), 0) AS commented,
        coalesce(sum(n) FILTER (WHERE action = 'closed'), 0) AS closed,
        coalesce(sum(n) FILTER (WHERE action = 'reopened'), 0) AS reopened,
        coalesce(sum(n) FILTER (WHERE action = 'hidden'), 0) AS hidden,
        sum(res_n) AS resolutions,
        -- avg() is this division: the same digits
        round(sum(res_sum) / nullif(sum(res_n), 0)::numeric, 4) AS mean_resolution_days
    FROM dm_totals
    GROUP BY entity_id
),

span AS (
    SELECT entity_id, min(first_at) AS first_action_at, max(last_at) AS last_action_at
    FROM dm_extremes
    GROUP BY entity_id
),

-- Activity by UTC hour and ISO weekday, zeros included.
slots AS (
    SELECT t.entity_id, 'hour' AS axis, g.slot
    FROM totals AS t, generate_series(0, 23) AS g (slot)
    UNION ALL
    SELECT t.entity_id, 'weekday', g.slot
    FROM totals AS t, generate_series(1, 7) AS g (slot)
),

slot_counts AS (
    SELECT entity_id, 'hour' AS axis, time_of_week_key % 100 AS slot, sum(n) AS n
    FROM dm_hours
    GROUP BY entity_id, time_of_week_key % 100
    UNION ALL
    SELECT entity_id, 'weekday', time_of_week_key / 100, sum(n)
    FROM dm_hours
    GROUP BY entity_id, time_of_week_key / 100
),

activity AS (
    SELECT
        s.entity_id,
        array_agg(coalesce(c.n, 0) ORDER BY s.slot) FILTER (WHERE s.axis = 'hour')::integer[] AS activity_by_hour,
        array_agg(coalesce(c.n, 0) ORDER BY s.slot) FILTER (WHERE s.axis = 'weekday')::integer[]
            AS activity_by_weekday
    FROM slots AS s
    LEFT JOIN slot_counts AS c USING (entity_id, axis, slot)
    GROUP BY s.entity_id
),

by_year AS (
    SELECT entity_id, jsonb_object_agg(year::text, counts) AS actions_by_year
    FROM (
        SELECT entity_id, year, jsonb_object_agg(action, n) AS counts
        FROM (
            SELECT entity_id, date_key / 10000 AS year, action, sum(n) AS n
            FROM dm_days
            GROUP BY entity_id, date_key / 10000, action
        ) AS per_year_action
        GROUP BY entity_id, year
    ) AS per_year
    GROUP BY entity_id
),

-- The 5 peers with most actions of any kind (25_state.sql keeps no more).
per_peer AS (
    SELECT p.entity_id, p.peer_id, p.n
    FROM dm_peers AS p
    WHERE p.action = 'all'
),

top_peers AS (
    SELECT
        r.entity_id,
        jsonb_agg(jsonb_build_object('rank', r.rank, 'actions', r.n) || nm.peer_top ORDER BY r.rank) AS top_peers
    FROM (
        SELECT *, row_number() OVER (PARTITION BY entity_id ORDER BY n DESC, peer_id) AS rank
        FROM per_peer
    ) AS r
    JOIN dm_peer_names AS nm USING (peer_id)
    WHERE r.rank <= 5
    GROUP BY r.entity_id
),

top_hashtags AS (
    SELECT
        entity_id,
        jsonb_agg(jsonb_build_object('rank', rank, 'hashtag', hashtag, 'actions', n) ORDER BY rank)
            AS top_hashtags
    FROM (
        SELECT entity_id, hashtag, n, row_number() OVER (PARTITION BY entity_id ORDER BY n DESC, hashtag) AS rank
        FROM (
            SELECT entity_id, hashtag, sum(n) AS n
            FROM dm_hashtags
            GROUP BY entity_id, hashtag
        ) AS per_hashtag
    ) AS ranked
    WHERE rank <= 5
    GROUP BY entity_id
),

notes_opened AS (
    SELECT
        entity_id,
        sum(n) AS notes_opened,
        coalesce(sum(n) FILTER (WHERE status = 'open'), 0) AS still_open
    FROM dm_notes
    GROUP BY entity_id
)

SELECT
    t.entity_id,
    t.actions,
    t.opened,
    t.commented,
    t.closed,
    t.reopened,
    t.hidden,
    y.actions_by_year,
    s.first_action_at,
    s.last_action_at,
    coalesce(o.notes_opened, 0) AS notes_opened,
    coalesce(o.still_open, 0) AS notes_opened_still_open,
    coalesce(a.peers_active, 0) AS peers_active,
    t.resolutions,
    t.mean_resolution_days,
    round(m.median::numeric, 4) AS median_resolution_days,
    coalesce(p.top_peers, '[]') AS top_peers,
    coalesce(h.top_hashtags, '[]') AS top_hashtags,
    v.activity_by_hour,
    v.activity_by_weekday
FROM totals AS t
JOIN span AS s USING (entity_id)
JOIN by_year AS y USING (entity_id)
JOIN activity AS v USING (entity_id)
LEFT JOIN dm_medians AS m USING (entity_id)
LEFT JOIN notes_opened AS o USING (entity_id)
LEFT JOIN dm_peer_counts AS a USING (entity_id)
LEFT JOIN top_peers AS p USING (entity_id)
LEFT JOIN top_hashtags AS h USING (entity_id)
WHERE t.actions > 0;

ALTER TABLE dm_metrics ADD PRIMARY KEY (entity_id);
