-- Datamart rows of the countries in dm_targets (10_targets.sql), from the temp tables of
-- 20_import.sql. dbt-style: import CTEs, logic CTEs (one metric family each), final
-- select; the imports are NOT MATERIALIZED so the planner sees the tables' statistics.
DELETE FROM {dwh}.datamart_countries AS d
USING dm_targets AS t
WHERE d.country_id = t.id;

INSERT INTO {dwh}.datamart_countries
WITH
country_rows AS NOT MATERIALIZED (
    SELECT * FROM dm_country_rows
),

actions AS NOT MATERIALIZED (
    SELECT * FROM dm_actions
),

notes AS NOT MATERIALIZED (
    SELECT * FROM dm_notes
),

-- Actors by natural id with their current name; anonymous (-1) is no user.
actors AS (
    SELECT v.user_key, v.user_id, c.username
    FROM {dwh}.dim_users AS v
    JOIN {dwh}.dim_users AS c ON c.user_id = v.user_id AND c.is_current
    WHERE v.user_id <> -1
),

hashtags AS (
    SELECT hashtag_key, hashtag FROM {dwh}.dim_hashtags
),

bridge AS (
    SELECT fact_id, hashtag_key FROM {dwh}.fact_hashtags
),

totals AS (
    SELECT
        country_id,
        count(*) AS actions,
        count(*) FILTER (WHERE action = 'opened') AS opened,
        count(*) FILTER (WHERE action = 'commented') AS commented,
        count(*) FILTER (WHERE action = 'closed') AS closed,
        count(*) FILTER (WHERE action = 'reopened') AS reopened,
        count(*) FILTER (WHERE action = 'hidden') AS hidden,
        min(action_at) AS first_action_at,
        max(action_at) AS last_action_at,
        count(days_to_resolution) AS resolutions,
        round(avg(days_to_resolution), 4) AS mean_resolution_days,
        round(percentile_cont(0.5) WITHIN GROUP (ORDER BY days_to_resolution::float8)::numeric, 4)
            AS median_resolution_days,
        ARRAY[
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 0),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 1),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 2),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 3),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 4),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 5),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 6),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 7),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 8),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 9),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 10),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 11),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 12),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 13),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 14),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 15),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 16),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 17),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 18),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 19),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 20),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 21),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 22),
            count(*) FILTER (WHERE action_time_of_week_key % 100 = 23)
        ]::integer[] AS activity_by_hour,
        ARRAY[
            count(*) FILTER (WHERE action_time_of_week_key / 100 = 1),
            count(*) FILTER (WHERE action_time_of_week_key / 100 = 2),
            count(*) FILTER (WHERE action_time_of_week_key / 100 = 3),
            count(*) FILTER (WHERE action_time_of_week_key / 100 = 4),
            count(*) FILTER (WHERE action_time_of_week_key / 100 = 5),
            count(*) FILTER (WHERE action_time_of_week_key / 100 = 6),
            count(*) FILTER (WHERE action_time_of_week_key / 100 = 7)
        ]::integer[] AS activity_by_weekday
    FROM actions
    GROUP BY country_id
),

per_year_action AS (
    SELECT country_id, action_date_key / 10000 AS year, action, count(*) AS n
    FROM actions
    GROUP BY country_id, action_date_key / 10000, action
),

per_year AS (
    SELECT country_id, year, jsonb_object_agg(action, n) AS counts
    FROM per_year_action
    GROUP BY country_id, year
),

by_year AS (
    SELECT country_id, jsonb_object_agg(year::text, counts) AS actions_by_year
    FROM per_year
    GROUP BY country_id
),

per_user AS (
    SELECT a.country_id, u.user_id, u.username, count(*) AS n
    FROM actions AS a
    JOIN actors AS u ON u.user_key = a.actor_user_key
    GROUP BY a.country_id, u.user_id, u.username
),

users_active AS (
    SELECT country_id, count(*) AS users_active
    FROM per_user
    GROUP BY country_id
),

top_users AS (
    SELECT
        country_id,
        jsonb_agg(
            jsonb_build_object('rank', rank, 'user_id', user_id, 'username', username, 'actions', n)
            ORDER BY rank
        ) AS top_users
    FROM (
        SELECT *, row_number() OVER (PARTITION BY country_id ORDER BY n DESC, user_id) AS rank
        FROM per_user
    ) AS ranked
    WHERE rank <= 5
    GROUP BY country_id
),

per_hashtag AS (
    SELECT a.country_id, h.hashtag, count(*) AS n
    FROM actions AS a
    JOIN bridge AS b USING (fact_id)
    JOIN hashtags AS h USING (hashtag_key)
    GROUP BY a.country_id, h.hashtag
),

top_hashtags AS (
    SELECT
        country_id,
        jsonb_agg(jsonb_build_object('rank', rank, 'hashtag', hashtag, 'actions', n) ORDER BY rank)
            AS top_hashtags
    FROM (
        SELECT *, row_number() OVER (PARTITION BY country_id ORDER BY n DESC, hashtag) AS rank
        FROM per_hashtag
    ) AS ranked
    WHERE rank <= 5
    GROUP BY country_id
),

notes_opened AS (
    SELECT
        country_id,
        count(*) AS notes_opened,
        count(*) FILTER (WHERE status = 'open') AS still_open
    FROM notes
    GROUP BY country_id
)

SELECT
    t.country_id,
    r.name,
    r.name_en,
    r.iso_alpha2,
    r.iso_alpha3,
    t.actions,
    t.opened,
    t.commented,
    t.closed,
    t.reopened,
    t.hidden,
    y.actions_by_year,
    t.first_action_at,
    t.last_action_at,
    coalesce(o.notes_opened, 0),
    coalesce(o.still_open, 0),
    coalesce(a.users_active, 0),
    t.resolutions,
    t.mean_resolution_days,
    t.median_resolution_days,
    coalesce(u.top_users, '[]'),
    coalesce(h.top_hashtags, '[]'),
    t.activity_by_hour,
    t.activity_by_weekday,
    NULL,  -- ranks: 40_rank.sql, over every country
    NULL
FROM totals AS t
JOIN country_rows AS r USING (country_id)
JOIN by_year AS y USING (country_id)
LEFT JOIN notes_opened AS o USING (country_id)
LEFT JOIN users_active AS a USING (country_id)
LEFT JOIN top_users AS u USING (country_id)
LEFT JOIN top_hashtags AS h USING (country_id);
