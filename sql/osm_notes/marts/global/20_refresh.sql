-- The one global row: overall totals and trends, recomputed on every refresh from the
-- datamart state (migrations/0500_mart_state.sql: the global counters, and the users'
-- and countries' totals for the rankings), never from every fact. What is not additive
-- is read by index: the first and last action (on the first and last day the state
-- knows of) and the middle resolutions for the median. Notes come from dim_notes.
DELETE FROM {dwh}.datamart_global;

INSERT INTO {dwh}.datamart_global
WITH
totals_rows AS (
    SELECT action, n, invalid_n, res_n, res_sum
    FROM {dwh}.mart_totals
    WHERE kind = 'global' AND entity_id = 0
),

day_rows AS (
    SELECT action, date_key, n
    FROM {dwh}.mart_days
    WHERE kind = 'global' AND entity_id = 0
),

users AS (
    SELECT u.user_id, u.username FROM {dwh}.dim_users AS u WHERE u.is_current
),

totals AS (
    SELECT
        coalesce(sum(n), 0) AS actions,
        coalesce(sum(n) FILTER (WHERE action = 'opened'), 0) AS opened,
        coalesce(sum(n) FILTER (WHERE action = 'commented'), 0) AS commented,
        coalesce(sum(n) FILTER (WHERE action = 'closed'), 0) AS closed,
        coalesce(sum(n) FILTER (WHERE action = 'reopened'), 0) AS reopened,
        coalesce(sum(n) FILTER (WHERE action = 'hidden'), 0) AS hidden,
        coalesce(sum(res_n), 0) AS resolutions,
        -- avg() is this division: the same digits
        round(sum(res_sum) / nullif(sum(res_n), 0)::numeric, 4) AS mean_resolution_days,
        coalesce(sum(invalid_n), 0) AS invalid_transitions
    FROM totals_rows
),

span AS (
    SELECT
        (
            SELECT min(f.action_at) FROM {dwh}.facts AS f
            WHERE f.action_date_key = (SELECT min(date_key) FROM day_rows)
        ) AS first_action_at,
        (
            SELECT max(f.action_at) FROM {dwh}.facts AS f
            WHERE f.action_date_key = (SELECT max(date_key) FROM day_rows)
        ) AS last_action_at
),

-- percentile_cont over the one or two middle values is the same float arithmetic as
-- over all of them; the index is read in order up to the middle.
median AS (
    SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY mid.v)::numeric, 4) AS median_resolution_days
    FROM totals AS t
    CROSS JOIN LATERAL (
        SELECT f.days_to_resolution::float8 AS v
        FROM {dwh}.facts AS f
        WHERE f.days_to_resolution IS NOT NULL
        ORDER BY f.days_to_resolution
        OFFSET (t.resolutions - 1) / 2
        LIMIT 2 - t.resolutions % 2
    ) AS mid
    WHERE t.resolutions > 0
),

hours AS (
    SELECT time_of_week_key % 100 AS hour, time_of_week_key / 100 AS weekday, sum(n) AS n
    FROM {dwh}.mart_hours
    WHERE kind = 'global' AND entity_id = 0
    GROUP BY time_of_week_key
),

activity AS (
    SELECT
        ARRAY(
            SELECT coalesce(sum(h.n), 0)
            FROM generate_series(0, 23) AS g (hour)
            LEFT JOIN hours AS h USING (hour)
            GROUP BY g.hour
            ORDER BY g.hour
        )::bigint[] AS activity_by_hour,
        ARRAY(
            SELECT coalesce(sum(h.n), 0)
            FROM generate_series(1, 7) AS g (weekday)
            LEFT JOIN hours AS h USING (weekday)
            GROUP BY g.weekday
            ORDER BY g.weekday
        )::bigint[] AS activity_by_weekday
),

by_year AS (
    SELECT jsonb_object_agg(year::text, counts) AS actions_by_year
    FROM (
        SELECT year, jsonb_object_agg(action, n) AS counts
        FROM (
            SELECT date_key / 10000 AS year, action, sum(n) AS n
            FROM day_rows
            GROUP BY date_key / 10000, action
        ) AS per_year_action
        GROUP BY year
    ) AS per_year
),

by_month AS (
    SELECT
        coalesce(jsonb_object_agg(month, opened) FILTER (WHERE opened > 0), '{{}}') AS opened_by_month,
        coalesce(jsonb_object_agg(month, closed) FILTER (WHERE closed > 0), '{{}}') AS closed_by_month
    FROM (
        SELECT
            to_char(to_date((date_key / 100)::text, 'YYYYMM'), 'YYYY-MM') AS month,
            coalesce(sum(n) FILTER (WHERE action = 'opened'), 0) AS opened,
            coalesce(sum(n) FILTER (WHERE action = 'closed'), 0) AS closed
        FROM day_rows
        GROUP BY date_key / 100
    ) AS months
),

-- Users and countries by their totals (the state of their datamarts' rows).
per_user AS (
    SELECT entity_id AS user_id, sum(n) AS n
    FROM {dwh}.mart_totals
    WHERE kind = 'user'
    GROUP BY entity_id
),

actor_counts AS (
    SELECT
        count(*) FILTER (WHERE p.user_id <> -1) AS users_active,
        coalesce(sum(p.n) FILTER (WHERE p.user_id = -1), 0) AS anonymous_actions
    FROM per_user AS p
    JOIN users AS u USING (user_id)
),

top_users AS (
    SELECT
        coalesce(jsonb_agg(
            jsonb_build_object('rank', rank, 'user_id', user_id, 'username', username, 'actions', n)
            ORDER BY rank
        ), '[]') AS top_users
    FROM (
        SELECT p.user_id, u.username, p.n, row_number() OVER (ORDER BY p.n DESC, p.user_id) AS rank
        FROM per_user AS p
        JOIN users AS u USING (user_id)
        WHERE p.user_id <> -1
    ) AS ranked
    WHERE rank <= 5
),

per_country AS (
    SELECT c.country_id, c.name_en, sum(s.n) AS n
    FROM {dwh}.mart_totals AS s
    JOIN {dwh}.dim_countries AS c ON c.country_id = s.entity_id
    WHERE s.kind = 'country'
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
        SELECT h.hashtag, sum(s.n) AS n, row_number() OVER (ORDER BY sum(s.n) DESC, h.hashtag) AS rank
        FROM {dwh}.mart_hashtags AS s
        JOIN {dwh}.dim_hashtags AS h USING (hashtag_key)
        WHERE s.kind = 'global' AND s.entity_id = 0
        GROUP BY h.hashtag
    ) AS ranked
    WHERE rank <= 5
),

note_counts AS (
    SELECT
        coalesce(sum(n), 0) AS notes,
        coalesce(sum(n) FILTER (WHERE status = 'open'), 0) AS notes_open,
        coalesce(sum(n) FILTER (WHERE status = 'closed'), 0) AS notes_closed,
        coalesce(sum(n) FILTER (WHERE status = 'hidden'), 0) AS notes_hidden
    FROM {dwh}.mart_notes
    WHERE kind = 'country'  -- every note is in one country (international waters included)
),

top_applications AS (
    SELECT
        coalesce(jsonb_agg(
            jsonb_build_object('rank', rank, 'application', name, 'notes', n) ORDER BY rank
        ), '[]') AS top_applications
    FROM (
        SELECT a.name, sum(s.n) AS n, row_number() OVER (ORDER BY sum(s.n) DESC, a.name) AS rank
        FROM {dwh}.mart_notes AS s
        JOIN {dwh}.dim_applications AS a USING (application_key)
        WHERE s.kind = 'country'
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
    s.first_action_at,
    s.last_action_at,
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
    md.median_resolution_days,
    c.top_countries,
    u.top_users,
    h.top_hashtags,
    p.top_applications,
    v.activity_by_hour,
    v.activity_by_weekday
FROM totals AS t
CROSS JOIN span AS s
CROSS JOIN activity AS v
CROSS JOIN by_year AS y
CROSS JOIN by_month AS m
CROSS JOIN note_counts AS n
CROSS JOIN actor_counts AS a
CROSS JOIN top_countries AS c
CROSS JOIN top_users AS u
CROSS JOIN top_hashtags AS h
CROSS JOIN top_applications AS p
LEFT JOIN median AS md ON true;
