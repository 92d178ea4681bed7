-- The viewer's profile of the users in dm_targets (OSM-Notes-Common user-profile
-- fields), set-based from the temp tables of 20_import.sql. Relative periods refer to
-- dm_period.today (UTC). Lists are ordered by quantity, ties broken by id or name, so
-- a marked refresh and a full rebuild build the same bytes.
-- Contract action names: open, commented, closed, reopened (hidden has no field).
WITH
period AS (
    SELECT
        today,
        to_char(today, 'YYYYMMDD')::integer AS day_key,
        to_char(today, 'YYYYMM')::integer AS month_key,
        extract(YEAR FROM today)::integer AS year
    FROM dm_period
),

kinds (action, kind) AS (
    VALUES ('opened', 'open'), ('commented', 'commented'), ('closed', 'closed'), ('reopened', 'reopened')
),

actions AS NOT MATERIALIZED (
    SELECT a.user_id, a.fact_id, a.note_id, a.action, a.action_at, a.action_date_key,
        a.action_time_of_week_key, a.country_key, a.days_to_resolution
    FROM dm_actions AS a
),

opened_notes AS NOT MATERIALIZED (
    SELECT user_id, status, application_key FROM dm_opened_notes
),

countries AS (
    SELECT country_key, country_id, name_en FROM {dwh}.dim_countries
),

-- Whole history, current year, month and day, first and latest note of each action
-- (the min / max of (time, fact id, note id): no per-group sort, no array of every note).
summary AS (
    SELECT
        a.user_id,
        jsonb_build_object(
            'history_whole_open', count(*) FILTER (WHERE a.action = 'opened'),
            'history_whole_commented', count(*) FILTER (WHERE a.action = 'commented'),
            'history_whole_closed', count(*) FILTER (WHERE a.action = 'closed'),
            'history_whole_reopened', count(*) FILTER (WHERE a.action = 'reopened'),
            'history_year_open', count(*) FILTER (WHERE a.action = 'opened' AND a.action_date_key / 10000 = p.year),
            'history_year_commented',
            count(*) FILTER (WHERE a.action = 'commented' AND a.action_date_key / 10000 = p.year),
            'history_year_closed', count(*) FILTER (WHERE a.action = 'closed' AND a.action_date_key / 10000 = p.year),
            'history_year_reopened',
            count(*) FILTER (WHERE a.action = 'reopened' AND a.action_date_key / 10000 = p.year),
            'history_month_open',
            count(*) FILTER (WHERE a.action = 'opened' AND a.action_date_key / 100 = p.month_key),
            'history_month_commented',
            count(*) FILTER (WHERE a.action = 'commented' AND a.action_date_key / 100 = p.month_key),
            'history_month_closed',
            count(*) FILTER (WHERE a.action = 'closed' AND a.action_date_key / 100 = p.month_key),
            'history_month_reopened',
            count(*) FILTER (WHERE a.action = 'reopened' AND a.action_date_key / 100 = p.month_key),
            'history_day_open', count(*) FILTER (WHERE a.action = 'opened' AND a.action_date_key = p.day_key),
            'history_day_commented', count(*) FILTER (WHERE a.action = 'commented' AND a.action_date_key = p.day_key),
            'history_day_closed', count(*) FILTER (WHERE a.action = 'closed' AND a.action_date_key = p.day_key),
            'history_day_reopened', count(*) FILTER (WHERE a.action = 'reopened' AND a.action_date_key = p.day_key),
            'date_starting_creating_notes',
            to_char(min(a.action_at) FILTER (WHERE a.action = 'opened') AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
            'date_starting_solving_notes',
            to_char(min(a.action_at) FILTER (WHERE a.action = 'closed') AT TIME ZONE 'UTC', 'YYYY-MM-DD')
        )
        || jsonb_build_object(
            'first_open_note_id',
            (min(ARRAY[extract(EPOCH FROM a.action_at), a.fact_id, a.note_id]) FILTER (WHERE a.action = 'opened'))[3]::integer,
            'first_commented_note_id',
            (min(ARRAY[extract(EPOCH FROM a.action_at), a.fact_id, a.note_id]) FILTER (WHERE a.action = 'commented'))[3]::integer,
            'first_closed_note_id',
            (min(ARRAY[extract(EPOCH FROM a.action_at), a.fact_id, a.note_id]) FILTER (WHERE a.action = 'closed'))[3]::integer,
            'first_reopened_note_id',
            (min(ARRAY[extract(EPOCH FROM a.action_at), a.fact_id, a.note_id]) FILTER (WHERE a.action = 'reopened'))[3]::integer,
            'latest_open_note_id',
            (max(ARRAY[extract(EPOCH FROM a.action_at), a.fact_id, a.note_id]) FILTER (WHERE a.action = 'opened'))[3]::integer,
            'latest_commented_note_id',
            (max(ARRAY[extract(EPOCH FROM a.action_at), a.fact_id, a.note_id]) FILTER (WHERE a.action = 'commented'))[3]::integer,
            'latest_closed_note_id',
            (max(ARRAY[extract(EPOCH FROM a.action_at), a.fact_id, a.note_id]) FILTER (WHERE a.action = 'closed'))[3]::integer,
            'latest_reopened_note_id',
            (max(ARRAY[extract(EPOCH FROM a.action_at), a.fact_id, a.note_id]) FILTER (WHERE a.action = 'reopened'))[3]::integer,
            'avg_days_to_resolution', round(avg(a.days_to_resolution), 2),
            'median_days_to_resolution',
            round(percentile_cont(0.5) WITHIN GROUP (ORDER BY a.days_to_resolution::float8)::numeric, 2)
        ) AS doc
    FROM actions AS a, period AS p
    GROUP BY a.user_id
),

-- history_<YYYY>_<kind> for every year from 2013 to this one, zeros included.
year_zeros AS (
    SELECT jsonb_object_agg(format('history_%s_%s', y, k.kind), 0) AS doc
    FROM period AS p, generate_series(2013, p.year) AS y, kinds AS k
),

years AS (
    SELECT user_id, jsonb_object_agg(format('history_%s_%s', year, kind), n) AS doc
    FROM (
        SELECT a.user_id, a.action_date_key / 10000 AS year, k.kind, count(*) AS n
        FROM actions AS a
        JOIN kinds AS k USING (action)
        GROUP BY a.user_id, a.action_date_key / 10000, k.kind
    ) AS per_year
    GROUP BY user_id
),

-- GitHub-style tiles: one digit per day of the last 53 weeks, oldest first, each
-- floor(log2(actions + 1)) capped at 9 (0 = none, 1 = 1-2 actions ... 9 = 511 and more).
-- Built from the active days only: each adds the zeros of the quiet days before it.
daily AS (
    SELECT
        a.user_id,
        to_date(a.action_date_key::text, 'YYYYMMDD') - (p.today - 370) AS pos,
        count(*) AS n
    FROM actions AS a, period AS p
    WHERE a.action_date_key >= to_char(p.today - 370, 'YYYYMMDD')::integer
    GROUP BY a.user_id, a.action_date_key, p.today
),

tiles AS (
    SELECT
        user_id,
        string_agg(repeat('0', pos - previous - 1) || least(9, floor(log(2, n + 1)))::integer::text, '' ORDER BY pos)
        || repeat('0', 370 - max(pos)) AS doc
    FROM (
        SELECT user_id, pos, n, coalesce(lag(pos) OVER (PARTITION BY user_id ORDER BY pos), -1) AS previous
        FROM daily
    ) AS days
    GROUP BY user_id
),

-- Hour-of-week grids (ISO day 1 = Monday, UTC hours), cells with actions only.
hours AS (
    SELECT
        user_id,
        jsonb_object_agg(
            'working_hours_of_week_' || grid,
            cells
        ) AS doc
    FROM (
        SELECT
            user_id,
            grid,
            jsonb_agg(
                jsonb_build_object('day_of_week', tow / 100, 'hour_of_day', tow % 100, 'count', n) ORDER BY tow
            ) AS cells
        FROM (
            SELECT
                a.user_id,
                CASE a.action WHEN 'opened' THEN 'opening' WHEN 'commented' THEN 'commenting' ELSE 'closing' END
                    AS grid,
                a.action_time_of_week_key AS tow,
                count(*) AS n
            FROM actions AS a
            WHERE a.action IN ('opened', 'commented', 'closed')
            GROUP BY 1, 2, 3
        ) AS cells
        GROUP BY user_id, grid
    ) AS grids
    GROUP BY user_id
),

-- The 50 days with most opens and most closes.
peak_days AS (
    SELECT
        user_id,
        jsonb_object_agg(
            CASE action WHEN 'opened' THEN 'dates_most_open' ELSE 'dates_most_closed' END, days
        ) AS doc
    FROM (
        SELECT
            user_id,
            action,
            jsonb_agg(jsonb_build_object('date', to_char(to_date(day::text, 'YYYYMMDD'), 'YYYY-MM-DD'), 'quantity', n)
                ORDER BY n DESC, day DESC) AS days
        FROM (
            SELECT
                a.user_id, a.action, a.action_date_key AS day, count(*) AS n,
                row_number() OVER (
                    PARTITION BY a.user_id, a.action ORDER BY count(*) DESC, a.action_date_key DESC
                ) AS rank
            FROM actions AS a
            WHERE a.action IN ('opened', 'closed')
            GROUP BY a.user_id, a.action, a.action_date_key
        ) AS ranked
        WHERE rank <= 50
        GROUP BY user_id, action
    ) AS lists
    GROUP BY user_id
),

-- Countries where the user opened and closed notes: all time (50) and per year (10).
country_counts AS (
    SELECT a.user_id, a.action, a.action_date_key / 10000 AS year, c.country_id, c.name_en, count(*) AS n
    FROM actions AS a
    JOIN countries AS c USING (country_key)
    WHERE a.action IN ('opened', 'closed')
    GROUP BY a.user_id, a.action, a.action_date_key / 10000, c.country_id, c.name_en
),

country_lists AS (
    SELECT
        user_id,
        jsonb_object_agg(
            CASE action WHEN 'opened' THEN 'countries_open_notes' ELSE 'countries_solving_notes' END, entries
        ) AS doc
    FROM (
        SELECT
            user_id,
            action,
            jsonb_agg(
                jsonb_build_object('rank', rank, 'country_id', country_id, 'country', name_en, 'quantity', n)
                ORDER BY rank
            ) AS entries
        FROM (
            SELECT
                user_id, action, country_id, name_en, sum(n) AS n,
                row_number() OVER (PARTITION BY user_id, action ORDER BY sum(n) DESC, country_id) AS rank
            FROM country_counts
            GROUP BY user_id, action, country_id, name_en
        ) AS ranked
        WHERE rank <= 50
        GROUP BY user_id, action
    ) AS lists
    GROUP BY user_id
),

country_years AS (
    SELECT user_id, jsonb_object_agg(format('ranking_countries_%s_%s', side, year), entries) AS doc
    FROM (
        SELECT
            user_id,
            CASE action WHEN 'opened' THEN 'opening' ELSE 'closing' END AS side,
            year,
            jsonb_agg(
                jsonb_build_object('rank', rank, 'country_id', country_id, 'country', name_en, 'quantity', n)
                ORDER BY rank
            ) AS entries
        FROM (
            SELECT
                *,
                row_number() OVER (PARTITION BY user_id, action, year ORDER BY n DESC, country_id) AS rank
            FROM country_counts
        ) AS ranked
        WHERE rank <= 10
        GROUP BY user_id, action, year
    ) AS lists
    GROUP BY user_id
),

-- Hashtags: every action's, and split by opening, closing and commenting (50 each).
hashtag_counts AS (
    SELECT a.user_id, a.action, h.hashtag, count(*) AS n
    FROM actions AS a
    JOIN {dwh}.fact_hashtags AS b USING (fact_id)
    JOIN {dwh}.dim_hashtags AS h USING (hashtag_key)
    GROUP BY a.user_id, a.action, h.hashtag
),

hashtag_lists AS (
    SELECT
        user_id,
        jsonb_object_agg(list, entries) AS doc,
        jsonb_build_object(
            'favorite_opening_hashtag', min(top) FILTER (WHERE list = 'hashtags_opening'),
            'favorite_resolution_hashtag', min(top) FILTER (WHERE list = 'hashtags_resolution'),
            'opening_hashtag_count', coalesce(sum(uses) FILTER (WHERE list = 'hashtags_opening'), 0),
            'resolution_hashtag_count', coalesce(sum(uses) FILTER (WHERE list = 'hashtags_resolution'), 0)
        ) AS counts
    FROM (
        SELECT
            user_id,
            list,
            jsonb_agg(jsonb_build_object('rank', rank, 'hashtag', hashtag, 'quantity', n) ORDER BY rank)
                FILTER (WHERE rank <= 50) AS entries,
            min(hashtag) FILTER (WHERE rank = 1) AS top,
            sum(n) AS uses
        FROM (
            SELECT
                user_id, list, hashtag, n,
                row_number() OVER (PARTITION BY user_id, list ORDER BY n DESC, hashtag) AS rank
            FROM (
                SELECT user_id, 'hashtags' AS list, hashtag, sum(n) AS n
                FROM hashtag_counts
                GROUP BY user_id, hashtag
                UNION ALL
                SELECT
                    user_id,
                    CASE action
                        WHEN 'opened' THEN 'hashtags_opening'
                        WHEN 'closed' THEN 'hashtags_resolution'
                        ELSE 'hashtags_comments'
                    END,
                    hashtag,
                    n
                FROM hashtag_counts
                WHERE action IN ('opened', 'closed', 'commented')
            ) AS lists
        ) AS ranked
        GROUP BY user_id, list
    ) AS per_list
    GROUP BY user_id
),

-- The notes the user opened: how many are resolved, still open, and by which app.
opened AS (
    SELECT
        user_id,
        jsonb_build_object(
            'notes_resolved_count', count(*) FILTER (WHERE status = 'closed'),
            'notes_still_open_count', count(*) FILTER (WHERE status = 'open'),
            'resolution_rate', round(100.0 * count(*) FILTER (WHERE status = 'closed') / count(*), 2)
        ) AS doc
    FROM opened_notes
    GROUP BY user_id
),

-- Notes the user opened and never closed themselves (closed by someone else, or open).
self_closed AS (
    SELECT
        user_id,
        jsonb_build_object('notes_opened_but_not_closed_by_user', count(*) FILTER (WHERE NOT closed)) AS doc
    FROM (
        SELECT user_id, note_id, bool_or(action = 'opened') AS opened, bool_or(action = 'closed') AS closed
        FROM actions
        GROUP BY user_id, note_id
    ) AS per_note
    WHERE opened
    GROUP BY user_id
),

applications AS (
    SELECT
        user_id,
        jsonb_build_object(
            'applications_used',
            jsonb_agg(
                jsonb_build_object('application_id', application_key, 'application_name', name, 'usage_count', n)
                ORDER BY n DESC, application_key
            ),
            'most_used_application_id', (array_agg(application_key ORDER BY n DESC, application_key))[1]
        ) AS doc
    FROM (
        SELECT o.user_id, o.application_key, a.name, count(*) AS n
        FROM opened_notes AS o
        JOIN {dwh}.dim_applications AS a USING (application_key)
        GROUP BY o.user_id, o.application_key, a.name
    ) AS per_app
    GROUP BY user_id
)

UPDATE {dwh}.datamart_users AS d
SET profile = jsonb_strip_nulls(
    s.doc
    || z.doc
    || coalesce(y.doc, '{{}}')
    || jsonb_build_object('last_year_activity', coalesce(t.doc, repeat('0', 371)))
    || coalesce(h.doc, '{{}}')
    || coalesce(k.doc, '{{}}')
    || coalesce(c.doc, '{{}}')
    || coalesce(cy.doc, '{{}}')
    || coalesce(l.doc, '{{}}')
    || coalesce(l.counts, '{{"opening_hashtag_count": 0, "resolution_hashtag_count": 0}}')
    || coalesce(o.doc, '{{}}')
    || coalesce(ap.doc, '{{}}')
    || coalesce(sc.doc, '{{}}')
)
FROM summary AS s
CROSS JOIN year_zeros AS z
LEFT JOIN years AS y USING (user_id)
LEFT JOIN tiles AS t USING (user_id)
LEFT JOIN hours AS h USING (user_id)
LEFT JOIN peak_days AS k USING (user_id)
LEFT JOIN country_lists AS c USING (user_id)
LEFT JOIN country_years AS cy USING (user_id)
LEFT JOIN hashtag_lists AS l USING (user_id)
LEFT JOIN opened AS o USING (user_id)
LEFT JOIN applications AS ap USING (user_id)
LEFT JOIN self_closed AS sc USING (user_id)
WHERE d.user_id = s.user_id;

INSERT INTO {dwh}.datamart_periods AS p (datamart, as_of)
SELECT 'users', today FROM dm_period
ON CONFLICT (datamart) DO UPDATE SET as_of = excluded.as_of;
