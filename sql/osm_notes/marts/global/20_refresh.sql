-- The one global row: overall totals and trends, recomputed in full on every refresh
-- (one pass over facts; there is no partial state to get wrong).
DELETE FROM {dwh}.datamart_global;

INSERT INTO {dwh}.datamart_global
WITH
actions AS (
    SELECT
        f.fact_id,
        -- an invalid close is an action but no close (as in the users and countries imports)
        CASE WHEN f.action = 'closed' AND NOT f.is_valid_transition THEN 'invalid_close' ELSE f.action END AS action,
        f.action_at, f.action_date_key, f.action_time_of_week_key, f.actor_user_key,
        f.country_key, f.days_to_resolution, f.is_valid_transition
    FROM {dwh}.facts AS f
),

notes AS (
    SELECT status, application_key FROM {dwh}.dim_notes
),

users AS (
    SELECT v.user_key, v.user_id, c.username
    FROM {dwh}.dim_users AS v
    JOIN {dwh}.dim_users AS c ON c.user_id = v.user_id AND c.is_current
),

countries AS (
    SELECT country_key, country_id, name_en FROM {dwh}.dim_countries
),

applications AS (
    SELECT application_key, name FROM {dwh}.dim_applications
),

hashtags AS (
    SELECT hashtag_key, hashtag FROM {dwh}.dim_hashtags
),

bridge AS (
    SELECT fact_id, hashtag_key FROM {dwh}.fact_hashtags
),

totals AS (
    SELECT
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
        count(*) FILTER (WHERE NOT is_valid_transition) AS invalid_transitions,
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
        ] AS activity_by_hour,
        ARRAY[
            count(*) FILTER (WHERE action_time_of_week_key / 100 = 1),
            count(*) FILTER (WHERE action_time_of_week_key / 100 = 2),
            count(*) FILTER (WHERE action_time_of_week_key / 100 = 3),
            count(*) FILTER (WHERE action_time_of_week_key / 100 = 4),
            count(*) FILTER (WHERE action_time_of_week_key / 100 = 5),
            count(*) FILTER (WHERE action_time_of_week_key / 100 = 6),
            count(*) FILTER (WHERE action_time_of_week_key / 100 = 7)
        ] AS activity_by_weekday
    FROM actions
),

per_year_action AS (
    SELECT action_date_key / 10000 AS year, action, count(*) AS n
    FROM actions
    GROUP BY action_date_key / 10000, action
),

by_year AS (
    SELECT jsonb_object_agg(year::text, counts) AS actions_by_year
    FROM (
        SELECT year, jsonb_object_agg(action, n) AS counts
        FROM per_year_action
        GROUP BY year
    ) AS per_year
),

by_month AS (
    SELECT
        coalesce(jsonb_object_agg(month, opened) FILTER (WHERE opened > 0), '{{}}') AS opened_by_month,
        coalesce(jsonb_object_agg(month, closed) FILTER (WHERE closed > 0), '{{}}') AS closed_by_month
    FROM (
        SELECT
            to_char(action_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month,
            count(*) FILTER (WHERE action = 'opened') AS opened,
            count(*) FILTER (WHERE action = 'closed' AND is_valid_transition) AS closed
        FROM actions
        GROUP BY 1
    ) AS months
),

per_user AS (
    SELECT u.user_id, u.username, count(*) AS n
    FROM actions AS a
    JOIN users AS u ON u.user_key = a.actor_user_key
    GROUP BY u.user_id, u.username
),

actor_counts AS (
    SELECT
        count(*) FILTER (WHERE user_id <> -1) AS users_active,
        coalesce(sum(n) FILTER (WHERE user_id = -1), 0) AS anonymous_actions
    FROM per_user
),

top_users AS (
    SELECT
        coalesce(jsonb_agg(
            jsonb_build_object('rank', rank, 'user_id', user_id, 'username', username, 'actions', n)
            ORDER BY rank
        ), '[]') AS top_users
    FROM (
        SELECT *, row_number() OVER (ORDER BY n DESC, user_id) AS rank
        FROM per_user
        WHERE user_id <> -1
    ) AS ranked
    WHERE rank <= 5
),

per_country AS (
    SELECT c.country_id, c.name_en, count(*) AS n
    FROM actions AS a
    JOIN countries AS c USING (country_key)
    GROUP BY c.country_id, c.name_en
),

top_countries AS (
    SELECT
        count(*) FILTER (WHERE country_id <> -1) AS countries_active,
        coalesce(jsonb_agg(
            jsonb_build_object('rank', rank, 'country_id', country_id, 'name', name_en, 'actions', n)
            ORDER BY rank
        ) FILTER (WHERE rank <= 5), '[]') AS top_countries
    FROM (
        SELECT *, row_number() OVER (ORDER BY n DESC, country_id) AS rank
        FROM per_country
        WHERE country_id <> -1  -- international waters is no country: never ranked
    ) AS ranked
),

top_hashtags AS (
    SELECT
        coalesce(jsonb_agg(
            jsonb_build_object('rank', rank, 'hashtag', hashtag, 'actions', n) ORDER BY rank
        ), '[]') AS top_hashtags
    FROM (
        SELECT h.hashtag, count(*) AS n, row_number() OVER (ORDER BY count(*) DESC, h.hashtag) AS rank
        FROM bridge AS b
        JOIN hashtags AS h USING (hashtag_key)
        GROUP BY h.hashtag
    ) AS ranked
    WHERE rank <= 5
),

note_counts AS (
    SELECT
        count(*) AS notes,
        count(*) FILTER (WHERE status = 'open') AS notes_open,
        count(*) FILTER (WHERE status = 'closed') AS notes_closed,
        count(*) FILTER (WHERE status = 'hidden') AS notes_hidden
    FROM notes
),

top_applications AS (
    SELECT
        coalesce(jsonb_agg(
            jsonb_build_object('rank', rank, 'application', name, 'notes', n) ORDER BY rank
        ), '[]') AS top_applications
    FROM (
        SELECT a.name, count(*) AS n, row_number() OVER (ORDER BY count(*) DESC, a.name) AS rank
        FROM notes AS n
        JOIN applications AS a USING (application_key)
        GROUP BY a.name
    ) AS ranked
)

SELECT
    1,
    t.actions,
    t.opened,
    t.commented,
    t.closed,
    t.reopened,
    t.hidden,
    coalesce(y.actions_by_year, '{{}}'),
    m.opened_by_month,
    m.closed_by_month,
    t.first_action_at,
    t.last_action_at,
    n.notes,
    n.notes_open,
    n.notes_closed,
    n.notes_hidden,
    a.users_active,
    c.countries_active,
    a.anonymous_actions,
    t.invalid_transitions,
    t.resolutions,
    t.mean_resolution_days,
    t.median_resolution_days,
    c.top_countries,
    u.top_users,
    h.top_hashtags,
    p.top_applications,
    t.activity_by_hour,
    t.activity_by_weekday
FROM totals AS t, by_year AS y, by_month AS m, note_counts AS n, actor_counts AS a,
    top_countries AS c, top_users AS u, top_hashtags AS h, top_applications AS p;
