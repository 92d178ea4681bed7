-- Datamart rows of the users in dm_targets (10_targets.sql), from the temp tables of
-- 20_import.sql. dbt-style: import CTEs, logic CTEs (one metric family each), final
-- select; the imports are NOT MATERIALIZED so the planner sees the tables' statistics.
DELETE FROM {dwh}.datamart_users AS d
USING dm_targets AS t
WHERE d.user_id = t.id;

INSERT INTO {dwh}.datamart_users
WITH
current_names AS (
    SELECT u.user_id, u.username
    FROM {dwh}.dim_users AS u
    JOIN dm_targets AS t ON t.id = u.user_id
    WHERE u.is_current
),

actions AS NOT MATERIALIZED (
    SELECT * FROM dm_actions
),

opened_notes AS NOT MATERIALIZED (
    SELECT * FROM dm_opened_notes
),

countries AS (
    SELECT country_key, country_id, name_en FROM {dwh}.dim_countries
),

hashtags AS (
    SELECT hashtag_key, hashtag FROM {dwh}.dim_hashtags
),

bridge AS (
    SELECT fact_id, hashtag_key FROM {dwh}.fact_hashtags
),

totals AS (
    SELECT
        user_id,
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
    GROUP BY user_id
),

per_year_action AS (
    SELECT user_id, action_date_key / 10000 AS year, action, count(*) AS n
    FROM actions
    GROUP BY user_id, action_date_key / 10000, action
),

per_year AS (
    SELECT user_id, year, jsonb_object_agg(action, n) AS counts
    FROM per_year_action
    GROUP BY user_id, year
),

by_year AS (
    SELECT user_id, jsonb_object_agg(year::text, counts) AS actions_by_year
    FROM per_year
    GROUP BY user_id
),

per_country AS (
    SELECT a.user_id, c.country_id, c.name_en, count(*) AS n
    FROM actions AS a
    JOIN countries AS c USING (country_key)
    GROUP BY a.user_id, c.country_id, c.name_en
),

top_countries AS (
    SELECT
        user_id,
        jsonb_agg(
            jsonb_build_object('rank', rank, 'country_id', country_id, 'name', name_en, 'actions', n)
            ORDER BY rank
        ) AS top_countries
    FROM (
        SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY n DESC, country_id) AS rank
        FROM per_country
    ) AS ranked
    WHERE rank <= 5
    GROUP BY user_id
),

per_hashtag AS (
    SELECT a.user_id, h.hashtag, count(*) AS n
    FROM actions AS a
    JOIN bridge AS b USING (fact_id)
    JOIN hashtags AS h USING (hashtag_key)
    GROUP BY a.user_id, h.hashtag
),

top_hashtags AS (
    SELECT
        user_id,
        jsonb_agg(jsonb_build_object('rank', rank, 'hashtag', hashtag, 'actions', n) ORDER BY rank)
            AS top_hashtags
    FROM (
        SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY n DESC, hashtag) AS rank
        FROM per_hashtag
    ) AS ranked
    WHERE rank <= 5
    GROUP BY user_id
),

notes_opened AS (
    SELECT
        user_id,
        count(*) AS notes_opened,
        count(*) FILTER (WHERE status = 'open') AS still_open
    FROM opened_notes
    GROUP BY user_id
)

SELECT
    t.user_id,
    n.username,
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
    t.resolutions,
    t.mean_resolution_days,
    t.median_resolution_days,
    coalesce(c.top_countries, '[]'),
    coalesce(h.top_hashtags, '[]'),
    t.activity_by_hour,
    t.activity_by_weekday,
    NULL,  -- ranks: 40_rank.sql, over every user
    NULL
FROM totals AS t
JOIN current_names AS n USING (user_id)
JOIN by_year AS y USING (user_id)
LEFT JOIN notes_opened AS o USING (user_id)
LEFT JOIN top_countries AS c USING (user_id)
LEFT JOIN top_hashtags AS h USING (user_id);
