-- The viewer's global statistics (OSM-Notes-Common global-stats fields), from the
-- datamart state (the global counters and the countries' totals), the last 30 days
-- and this year's resolutions of facts by the day index, notes from the state and the
-- last 90 days of dim_notes.
-- Relative periods refer to today (UTC): the current year, the last 30 days, the
-- 53-week activity string. The global row is recomputed on every refresh.
WITH
period AS (
    SELECT
        today,
        extract(YEAR FROM today)::integer AS year,
        to_char(today - 370, 'YYYYMMDD')::integer AS tiles_from_key,
        -- Whole UTC days, like every relative field: "the last 30 days" are today and
        -- the 30 days before it. A window to the second would move between two
        -- refreshes of the same day (and between a run and the nightly rebuild check).
        to_char(today - 30, 'YYYYMMDD')::integer AS recent_from_key,
        (today - 7)::timestamp AT TIME ZONE 'UTC' AS week_from,
        (today - 30)::timestamp AT TIME ZONE 'UTC' AS month_from,
        (today - 90)::timestamp AT TIME ZONE 'UTC' AS quarter_from
    FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS today) AS t
),

day_rows AS (
    SELECT action, date_key, n, res_n, res_sum
    FROM {dwh}.mart_days
    WHERE kind = 'global' AND entity_id = 0
),

recent AS (
    SELECT f.action, f.is_valid_transition, f.actor_user_key
    FROM {dwh}.facts AS f, period AS p
    WHERE f.action_date_key >= p.recent_from_key
),

-- This year's resolutions, for their median.
year_resolutions AS (
    SELECT f.days_to_resolution
    FROM {dwh}.facts AS f, period AS p
    WHERE f.action_date_key BETWEEN p.year * 10000 AND p.year * 10000 + 9999
        AND f.days_to_resolution IS NOT NULL
),

-- The first and the latest note of an action: on the first and last day the state
-- knows of, by the day index (min / max of (time, fact id)).
extremes AS (
    SELECT
        b.action,
        (
            SELECT f.note_id FROM {dwh}.facts AS f
            WHERE f.action_date_key = b.first_day
                AND CASE WHEN f.action = 'closed' AND NOT f.is_valid_transition THEN 'invalid_close' ELSE f.action END
                    = b.action
            ORDER BY f.action_at, f.fact_id
            LIMIT 1
        ) AS first_note,
        (
            SELECT f.note_id FROM {dwh}.facts AS f
            WHERE f.action_date_key = b.last_day
                AND CASE WHEN f.action = 'closed' AND NOT f.is_valid_transition THEN 'invalid_close' ELSE f.action END
                    = b.action
            ORDER BY f.action_at DESC, f.fact_id DESC
            LIMIT 1
        ) AS last_note
    FROM (
        SELECT action, min(date_key) AS first_day, max(date_key) AS last_day
        FROM day_rows
        WHERE action IN ('opened', 'closed', 'reopened')
        GROUP BY action
    ) AS b
),

resolutions AS (
    SELECT coalesce(sum(res_n), 0) AS c FROM day_rows
),

median AS (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY mid.v) AS v
    FROM resolutions AS r
    CROSS JOIN LATERAL (
        SELECT f.days_to_resolution::float8 AS v
        FROM {dwh}.facts AS f
        WHERE f.days_to_resolution IS NOT NULL
        ORDER BY f.days_to_resolution
        OFFSET (r.c - 1) / 2
        LIMIT 2 - r.c % 2
    ) AS mid
    WHERE r.c > 0
),

summary AS (
    SELECT jsonb_build_object(
        'history_whole_open', coalesce(sum(d.n) FILTER (WHERE d.action = 'opened'), 0),
        'history_whole_commented', coalesce(sum(d.n) FILTER (WHERE d.action = 'commented'), 0),
        'history_whole_closed', coalesce(sum(d.n) FILTER (WHERE d.action = 'closed'), 0),
        'history_whole_reopened', coalesce(sum(d.n) FILTER (WHERE d.action = 'reopened'), 0),
        'history_year_open',
        coalesce(sum(d.n) FILTER (WHERE d.action = 'opened' AND d.date_key / 10000 = p.year), 0),
        'history_year_commented',
        coalesce(sum(d.n) FILTER (WHERE d.action = 'commented' AND d.date_key / 10000 = p.year), 0),
        'history_year_closed',
        coalesce(sum(d.n) FILTER (WHERE d.action = 'closed' AND d.date_key / 10000 = p.year), 0),
        'history_year_reopened',
        coalesce(sum(d.n) FILTER (WHERE d.action = 'reopened' AND d.date_key / 10000 = p.year), 0),
        'date_starting_creating_notes',
        to_char(to_date((min(d.date_key) FILTER (WHERE d.action = 'opened'))::text, 'YYYYMMDD'), 'YYYY-MM-DD'),
        'date_starting_solving_notes',
        to_char(to_date((min(d.date_key) FILTER (WHERE d.action = 'closed'))::text, 'YYYYMMDD'), 'YYYY-MM-DD'),
        'notes_resolved_last_30_days',
        (SELECT count(*) FROM recent AS r WHERE r.action = 'closed' AND r.is_valid_transition)
    )
    || jsonb_build_object(
        'first_open_note_id', (SELECT first_note FROM extremes WHERE action = 'opened'),
        'first_closed_note_id', (SELECT first_note FROM extremes WHERE action = 'closed'),
        'first_reopened_note_id', (SELECT first_note FROM extremes WHERE action = 'reopened'),
        'latest_open_note_id', (SELECT last_note FROM extremes WHERE action = 'opened'),
        'latest_closed_note_id', (SELECT last_note FROM extremes WHERE action = 'closed'),
        'latest_reopened_note_id', (SELECT last_note FROM extremes WHERE action = 'reopened'),
        -- avg() is this division: the same digits
        'avg_days_to_resolution', round(sum(d.res_sum) / nullif(sum(d.res_n), 0)::numeric, 2),
        'median_days_to_resolution', (SELECT round(v::numeric, 2) FROM median),
        'avg_days_to_resolution_current_year',
        round(
            sum(d.res_sum) FILTER (WHERE d.date_key / 10000 = p.year)
            / nullif(sum(d.res_n) FILTER (WHERE d.date_key / 10000 = p.year), 0)::numeric,
            2
        ),
        'median_days_to_resolution_current_year',
        (
            SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY y.days_to_resolution::float8)::numeric, 2)
            FROM year_resolutions AS y
        )
    ) AS doc
    FROM day_rows AS d
    RIGHT JOIN period AS p ON true
    GROUP BY p.year
),

-- Distinct members who acted in the last 30 days; the anonymous member is no user.
active AS (
    SELECT jsonb_build_object('active_users_count', count(DISTINCT u.user_id)) AS doc
    FROM recent AS a
    JOIN {dwh}.dim_users AS u ON u.user_key = a.actor_user_key
    WHERE u.user_id <> -1
),

tiles AS (
    SELECT string_agg(least(9, floor(log(2, coalesce(d.n, 0) + 1)))::integer::text, '' ORDER BY g.day) AS doc
    FROM period AS p
    CROSS JOIN LATERAL generate_series(p.today - 370, p.today, interval '1 day') AS g (day)
    LEFT JOIN (
        SELECT r.date_key AS day, sum(r.n) AS n
        FROM day_rows AS r, period AS p
        WHERE r.date_key >= p.tiles_from_key
        GROUP BY r.date_key
    ) AS d ON d.day = to_char(g.day, 'YYYYMMDD')::integer
),

-- Notes now: open, closed, the backlog (open for more than 7 days) and the age of open
-- ones. The counts are the row's own (20_refresh.sql, from the datamart state); only
-- notes of the last 90 days are read (by the created_at index): the older open ones
-- are the rest of the open count.
recent_notes AS (
    SELECT
        count(*) FILTER (WHERE n.created_at >= p.month_from) AS created_30_days,
        count(*) FILTER (WHERE n.status = 'open' AND n.created_at >= p.week_from) AS open_7_days,
        count(*) FILTER (
            WHERE n.status = 'open' AND n.created_at < p.week_from AND n.created_at >= p.month_from
        ) AS open_30_days,
        count(*) FILTER (WHERE n.status = 'open' AND n.created_at < p.month_from) AS open_90_days
    FROM {dwh}.dim_notes AS n, period AS p
    WHERE n.created_at >= p.quarter_from
),

notes AS (
    SELECT jsonb_build_object(
        'currently_open_count', s.notes_open,
        'currently_closed_count', s.notes_closed,
        'notes_resolved_count', s.notes_closed,
        'resolution_rate', round(100.0 * s.notes_closed / nullif(s.notes, 0), 2),
        'notes_created_last_30_days', r.created_30_days,
        'notes_backlog_size', s.notes_open - r.open_7_days,
        'notes_age_distribution', jsonb_build_object(
            '0-7_days', r.open_7_days,
            '8-30_days', r.open_30_days,
            '31-90_days', r.open_90_days,
            '90_plus_days', s.notes_open - r.open_7_days - r.open_30_days - r.open_90_days
        )
    ) AS doc
    FROM {dwh}.datamart_global AS s, recent_notes AS r
    WHERE s.id = 1
),

top_countries AS (
    SELECT jsonb_build_object(
        'top_countries',
        coalesce(jsonb_agg(
            jsonb_build_object('country_id', country_id, 'country_name', name_en, 'total_actions', n)
            ORDER BY n DESC, country_id
        ), '[]')
    ) AS doc
    FROM (
        SELECT c.country_id, c.name_en, sum(s.n) AS n,
            row_number() OVER (ORDER BY sum(s.n) DESC, c.country_id) AS rank
        FROM {dwh}.mart_totals AS s
        JOIN {dwh}.dim_countries AS c ON c.country_id = s.entity_id
        WHERE s.kind = 'country'
            AND c.country_id <> -1  -- international waters is no country: never ranked
        GROUP BY c.country_id, c.name_en
    ) AS ranked
    WHERE rank <= 10
),

applications AS (
    SELECT jsonb_build_object(
        'applications_used',
        coalesce(jsonb_agg(
            jsonb_build_object('application_id', application_key, 'application_name', name, 'usage_count', n)
            ORDER BY n DESC, application_key
        ), '[]'),
        'most_used_application_id', (array_agg(application_key ORDER BY n DESC, application_key))[1]
    ) AS doc
    FROM (
        SELECT s.application_key, a.name, sum(s.n) AS n
        FROM {dwh}.mart_notes AS s
        JOIN {dwh}.dim_applications AS a USING (application_key)
        WHERE s.kind = 'country'
        GROUP BY s.application_key, a.name
    ) AS per_app
)

UPDATE {dwh}.datamart_global AS g
SET profile = jsonb_strip_nulls(
    jsonb_build_object('dimension_global_id', 1)
    || s.doc
    || ac.doc
    || jsonb_build_object('last_year_activity', t.doc)
    || n.doc
    || c.doc
    || ap.doc
)
FROM summary AS s, active AS ac, tiles AS t, notes AS n, top_countries AS c, applications AS ap
WHERE g.id = 1;
