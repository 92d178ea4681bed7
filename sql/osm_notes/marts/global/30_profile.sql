-- The viewer's global statistics (OSM-Notes-Common global-stats fields), over every
-- fact and note. Relative periods refer to today (UTC): the current year, the last
-- 30 days, the 53-week activity string. The global row is recomputed on every refresh.
WITH
period AS (
    SELECT
        today,
        extract(YEAR FROM today)::integer AS year,
        to_char(today - 370, 'YYYYMMDD')::integer AS tiles_from_key
    FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS today) AS t
),

actions AS (
    SELECT
        f.fact_id, f.note_id,
        -- an invalid close is an action but no close (as in the users and countries imports)
        CASE WHEN f.action = 'closed' AND NOT f.is_valid_transition THEN 'invalid_close' ELSE f.action END AS action,
        f.action_at, f.action_date_key, f.actor_user_key, f.country_key,
        f.days_to_resolution, f.is_valid_transition
    FROM {dwh}.facts AS f
),

summary AS (
    SELECT jsonb_build_object(
        'history_whole_open', count(*) FILTER (WHERE a.action = 'opened'),
        'history_whole_commented', count(*) FILTER (WHERE a.action = 'commented'),
        'history_whole_closed', count(*) FILTER (WHERE a.action = 'closed'),
        'history_whole_reopened', count(*) FILTER (WHERE a.action = 'reopened'),
        'history_year_open', count(*) FILTER (WHERE a.action = 'opened' AND a.action_date_key / 10000 = p.year),
        'history_year_commented',
        count(*) FILTER (WHERE a.action = 'commented' AND a.action_date_key / 10000 = p.year),
        'history_year_closed', count(*) FILTER (WHERE a.action = 'closed' AND a.action_date_key / 10000 = p.year),
        'history_year_reopened', count(*) FILTER (WHERE a.action = 'reopened' AND a.action_date_key / 10000 = p.year),
        'date_starting_creating_notes',
        to_char(min(a.action_at) FILTER (WHERE a.action = 'opened') AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
        'date_starting_solving_notes',
        to_char(min(a.action_at) FILTER (WHERE a.action = 'closed') AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
        'notes_resolved_last_30_days',
        count(*) FILTER (WHERE a.action = 'closed' AND a.is_valid_transition AND a.action_at >= now() - interval '30 days')
    )
    || jsonb_build_object(
        'first_open_note_id',
        (min(ARRAY[extract(EPOCH FROM a.action_at), a.fact_id, a.note_id]) FILTER (WHERE a.action = 'opened'))[3]::integer,
        'first_closed_note_id',
        (min(ARRAY[extract(EPOCH FROM a.action_at), a.fact_id, a.note_id]) FILTER (WHERE a.action = 'closed'))[3]::integer,
        'first_reopened_note_id',
        (min(ARRAY[extract(EPOCH FROM a.action_at), a.fact_id, a.note_id]) FILTER (WHERE a.action = 'reopened'))[3]::integer,
        'latest_open_note_id',
        (max(ARRAY[extract(EPOCH FROM a.action_at), a.fact_id, a.note_id]) FILTER (WHERE a.action = 'opened'))[3]::integer,
        'latest_closed_note_id',
        (max(ARRAY[extract(EPOCH FROM a.action_at), a.fact_id, a.note_id]) FILTER (WHERE a.action = 'closed'))[3]::integer,
        'latest_reopened_note_id',
        (max(ARRAY[extract(EPOCH FROM a.action_at), a.fact_id, a.note_id]) FILTER (WHERE a.action = 'reopened'))[3]::integer,
        'avg_days_to_resolution', round(avg(a.days_to_resolution), 2),
        'median_days_to_resolution',
        round(percentile_cont(0.5) WITHIN GROUP (ORDER BY a.days_to_resolution::float8)::numeric, 2),
        'avg_days_to_resolution_current_year',
        round(avg(a.days_to_resolution) FILTER (WHERE a.action_date_key / 10000 = p.year), 2),
        'median_days_to_resolution_current_year',
        round((percentile_cont(0.5) WITHIN GROUP (ORDER BY a.days_to_resolution::float8)
            FILTER (WHERE a.action_date_key / 10000 = p.year))::numeric, 2)
    ) AS doc
    FROM actions AS a, period AS p
),

-- Distinct members who acted in the last 30 days; the anonymous member is no user.
active AS (
    SELECT jsonb_build_object('active_users_count', count(DISTINCT u.user_id)) AS doc
    FROM actions AS a
    JOIN {dwh}.dim_users AS u ON u.user_key = a.actor_user_key
    WHERE u.user_id <> -1 AND a.action_at >= now() - interval '30 days'
),

tiles AS (
    SELECT string_agg(least(9, floor(log(2, coalesce(d.n, 0) + 1)))::integer::text, '' ORDER BY g.day) AS doc
    FROM period AS p
    CROSS JOIN LATERAL generate_series(p.today - 370, p.today, interval '1 day') AS g (day)
    LEFT JOIN (
        SELECT a.action_date_key AS day, count(*) AS n
        FROM actions AS a, period AS p
        WHERE a.action_date_key >= p.tiles_from_key
        GROUP BY a.action_date_key
    ) AS d ON d.day = to_char(g.day, 'YYYYMMDD')::integer
),

-- Notes now: open, closed, the backlog (open for more than 7 days) and the age of open ones.
notes AS (
    SELECT jsonb_build_object(
        'currently_open_count', count(*) FILTER (WHERE n.status = 'open'),
        'currently_closed_count', count(*) FILTER (WHERE n.status = 'closed'),
        'notes_resolved_count', count(*) FILTER (WHERE n.status = 'closed'),
        'resolution_rate', round(100.0 * count(*) FILTER (WHERE n.status = 'closed') / nullif(count(*), 0), 2),
        'notes_created_last_30_days', count(*) FILTER (WHERE n.created_at >= now() - interval '30 days'),
        'notes_backlog_size', count(*) FILTER (WHERE n.status = 'open' AND n.created_at < now() - interval '7 days'),
        'notes_age_distribution', jsonb_build_object(
            '0-7_days', count(*) FILTER (WHERE n.status = 'open' AND n.created_at >= now() - interval '7 days'),
            '8-30_days', count(*) FILTER (
                WHERE n.status = 'open' AND n.created_at < now() - interval '7 days'
                AND n.created_at >= now() - interval '30 days'
            ),
            '31-90_days', count(*) FILTER (
                WHERE n.status = 'open' AND n.created_at < now() - interval '30 days'
                AND n.created_at >= now() - interval '90 days'
            ),
            '90_plus_days', count(*) FILTER (WHERE n.status = 'open' AND n.created_at < now() - interval '90 days')
        )
    ) AS doc
    FROM {dwh}.dim_notes AS n
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
        SELECT c.country_id, c.name_en, count(*) AS n,
            row_number() OVER (ORDER BY count(*) DESC, c.country_id) AS rank
        FROM actions AS a
        JOIN {dwh}.dim_countries AS c USING (country_key)
        WHERE c.country_id <> -1  -- international waters is no country: never ranked
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
        SELECT n.application_key, a.name, count(*) AS n
        FROM {dwh}.dim_notes AS n
        JOIN {dwh}.dim_applications AS a USING (application_key)
        GROUP BY n.application_key, a.name
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
