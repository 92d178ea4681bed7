-- Synthetic osm_notes datamarts for benchmarks/export_json.py: {users} users and
-- {countries} countries with every column filled the way the refresh fills it
-- (counts that add up, per-year maps, top-5 lists, 24 + 7 activity buckets, names in
-- several scripts, and the viewer's profile: per-period and per-year counts, first and
-- latest notes, the 371-day tiles, hour-of-week cells, country/user and hashtag lists,
-- peak days), so the export renders and validates documents of realistic size.
TRUNCATE osm_notes_dwh.datamart_users, osm_notes_dwh.datamart_countries, osm_notes_dwh.datamart_global;

INSERT INTO osm_notes_dwh.datamart_countries
SELECT
    c.id, n.name, n.name_en, NULL, NULL,
    a.opened + a.commented + a.closed, a.opened, a.commented, a.closed, 0, 0,
    jsonb_build_object('2024', jsonb_build_object('opened', a.opened, 'closed', a.closed)),
    timestamptz '2014-01-01' + c.id * interval '3 days', timestamptz '2025-06-01' + c.id * interval '1 hour',
    a.opened, a.opened / 4, 10 + c.id, a.closed, round(c.id / 7.0, 4), round(c.id / 9.0, 4),
    jsonb_build_array(jsonb_build_object('rank', 1, 'user_id', c.id, 'username', 'mapper_' || c.id, 'actions', 9)),
    jsonb_build_array(jsonb_build_object('rank', 1, 'hashtag', '#surveyme', 'actions', 3)),
    (SELECT array_agg((c.id * h) % 97) FROM generate_series(1, 24) AS h),
    (SELECT array_agg((c.id * d) % 31) FROM generate_series(1, 7) AS d),
    c.id, c.id
FROM generate_series(1, {countries}) AS c(id)
CROSS JOIN LATERAL (
    SELECT 50 + c.id % 400 AS opened, c.id % 900 AS commented, c.id % 300 AS closed
) AS a
CROSS JOIN LATERAL (
    SELECT (ARRAY['Deutschland', 'Россия', '日本', 'مصر', 'Ελλάδα', 'Côte d''Ivoire'])[1 + c.id % 6] || ' ' || c.id AS name,
           'Country ' || c.id AS name_en
) AS n;

-- The viewer's profile of each country (what marts/countries/35_profile.sql builds).
UPDATE osm_notes_dwh.datamart_countries AS d
SET profile = (
    SELECT jsonb_object_agg(format('history_%s_%s', y, k), CASE WHEN y = 2024 THEN d.opened ELSE 0 END)
    FROM generate_series(2013, 2026) AS y, unnest(ARRAY['open', 'commented', 'closed', 'reopened']) AS k
) || jsonb_build_object(
    'history_whole_open', d.opened, 'history_whole_commented', d.commented,
    'history_whole_closed', d.closed, 'history_whole_reopened', 0,
    'history_year_open', d.opened, 'history_year_commented', d.commented,
    'history_year_closed', d.closed, 'history_year_reopened', 0,
    'history_month_open', 0, 'history_month_commented', 0, 'history_month_closed', 0,
    'history_month_reopened', 0, 'history_day_open', 0, 'history_day_commented', 0,
    'history_day_closed', 0, 'history_day_reopened', 0,
    'last_year_activity', lpad(((d.country_id * 7919) % 1000000)::text, 371, '0'),
    'opening_hashtag_count', 0, 'resolution_hashtag_count', 0,
    'notes_resolved_count', d.closed, 'notes_still_open_count', d.notes_opened_still_open,
    'users_open_notes', (
        SELECT jsonb_agg(jsonb_build_object('rank', r, 'user_id', 1 + (d.country_id * r) % 1000, 'username', 'mapper_' || r, 'quantity', 60 - r) ORDER BY r)
        FROM generate_series(1, 50) AS r
    ),
    'working_hours_of_week_opening', (
        SELECT jsonb_agg(jsonb_build_object('day_of_week', 1 + t / 24, 'hour_of_day', t % 24, 'count', 1 + t % 9) ORDER BY t)
        FROM generate_series(0, 167) AS t
    )
);

INSERT INTO osm_notes_dwh.datamart_users
SELECT
    u.id, (ARRAY['Zoë', 'Андрей', '山田', 'محمد', 'Σοφία', 'maría'])[1 + u.id % 6] || '_' || u.id,
    a.opened + a.commented + a.closed + a.reopened, a.opened, a.commented, a.closed, a.reopened, 0,
    jsonb_build_object(
        '2023', jsonb_build_object('opened', a.opened / 2, 'commented', a.commented),
        '2024', jsonb_build_object('opened', a.opened - a.opened / 2, 'closed', a.closed, 'reopened', a.reopened)
    ),
    timestamptz '2013-04-24' + (u.id % 4000) * interval '1 day',
    timestamptz '2024-01-01' + (u.id % 600) * interval '1 day',
    a.opened, a.opened / 3, a.closed,
    CASE WHEN a.closed > 0 THEN round((u.id % 400) / 3.0, 4) END,
    CASE WHEN a.closed > 0 THEN round((u.id % 300) / 2.0, 4) END,
    jsonb_build_array(
        jsonb_build_object('rank', 1, 'country_id', 1 + u.id % {countries}, 'name', 'Country ' || (1 + u.id % {countries}), 'actions', a.opened),
        jsonb_build_object('rank', 2, 'country_id', 1 + (u.id + 7) % {countries}, 'name', 'Country ' || (1 + (u.id + 7) % {countries}), 'actions', a.commented)
    ),
    CASE WHEN u.id % 4 = 0
         THEN jsonb_build_array(jsonb_build_object('rank', 1, 'hashtag', '#missingmaps', 'actions', 1))
         ELSE '[]'::jsonb END,
    (SELECT array_agg((u.id + h) % 5) FROM generate_series(1, 24) AS h),
    (SELECT array_agg((u.id + d) % 9) FROM generate_series(1, 7) AS d)
FROM generate_series(1, {users}) AS u(id)
CROSS JOIN LATERAL (
    SELECT 1 + u.id % 13 AS opened, u.id % 17 AS commented, u.id % 11 AS closed, u.id % 3 AS reopened
) AS a;

-- The viewer's profile of each user (what marts/users/35_profile.sql builds).
UPDATE osm_notes_dwh.datamart_users AS d
SET profile = (
    SELECT jsonb_object_agg(format('history_%s_%s', y, k), CASE WHEN y = 2024 THEN 1 + d.user_id % 5 ELSE 0 END)
    FROM generate_series(2013, 2026) AS y, unnest(ARRAY['open', 'commented', 'closed', 'reopened']) AS k
) || jsonb_build_object(
    'history_whole_open', d.opened, 'history_whole_commented', d.commented,
    'history_whole_closed', d.closed, 'history_whole_reopened', d.reopened,
    'history_year_open', d.opened / 2, 'history_year_commented', d.commented / 2,
    'history_year_closed', d.closed / 2, 'history_year_reopened', 0,
    'history_month_open', d.opened / 4, 'history_month_commented', 0, 'history_month_closed', 0,
    'history_month_reopened', 0, 'history_day_open', 0, 'history_day_commented', 0,
    'history_day_closed', 0, 'history_day_reopened', 0,
    'date_starting_creating_notes', to_char(d.first_action_at, 'YYYY-MM-DD'),
    'first_open_note_id', 1000 + d.user_id, 'latest_open_note_id', 5000000 + d.user_id,
    'last_year_activity', lpad(((d.user_id * 7919) % 1000000)::text, 371, '0'),
    'opening_hashtag_count', d.user_id % 3, 'resolution_hashtag_count', 0,
    'resolution_rate', round((d.user_id % 100)::numeric, 2), 'notes_resolved_count', d.closed,
    'notes_still_open_count', d.opened / 3
) || jsonb_build_object(
    'working_hours_of_week_opening', (
        SELECT jsonb_agg(jsonb_build_object('day_of_week', 1 + (d.user_id + h) % 7, 'hour_of_day', h, 'count', 1 + h % 4)
            ORDER BY h)
        FROM generate_series(0, 23, 3) AS h
    ),
    'dates_most_open', jsonb_build_array(
        jsonb_build_object('date', to_char(d.last_action_at, 'YYYY-MM-DD'), 'quantity', d.opened),
        jsonb_build_object('date', to_char(d.first_action_at, 'YYYY-MM-DD'), 'quantity', 1)
    ),
    'countries_open_notes', jsonb_build_array(
        jsonb_build_object('rank', 1, 'country_id', 1 + d.user_id % {countries}, 'country', 'Country ' || (1 + d.user_id % {countries}), 'quantity', d.opened)
    ),
    'ranking_countries_opening_2024', jsonb_build_array(
        jsonb_build_object('rank', 1, 'country_id', 1 + d.user_id % {countries}, 'country', 'Country ' || (1 + d.user_id % {countries}), 'quantity', 1 + d.user_id % 5)
    ),
    'applications_used', jsonb_build_array(
        jsonb_build_object('application_id', 1, 'application_name', 'StreetComplete', 'usage_count', d.opened)
    ),
    'most_used_application_id', 1
);

INSERT INTO osm_notes_dwh.datamart_global
SELECT
    1, sum(actions), sum(opened), sum(commented), sum(closed), sum(reopened), 0,
    jsonb_build_object('2024', jsonb_build_object('opened', sum(opened))),
    jsonb_build_object('2024-01', sum(opened)), jsonb_build_object('2024-02', sum(closed)),
    min(first_action_at), max(last_action_at),
    sum(notes_opened), sum(notes_opened_still_open), sum(closed), 0, count(*), {countries}, 0, 0,
    sum(resolutions), 12.5, 3.25,
    '[]'::jsonb, '[]'::jsonb, '[]'::jsonb,
    jsonb_build_array(jsonb_build_object('rank', 1, 'application', 'StreetComplete', 'notes', 42)),
    array_fill(1::bigint, ARRAY[24]), array_fill(2::bigint, ARRAY[7])
FROM osm_notes_dwh.datamart_users;

-- The viewer's global statistics (what marts/global/30_profile.sql builds).
UPDATE osm_notes_dwh.datamart_global AS g
SET profile = jsonb_build_object(
    'dimension_global_id', 1, 'history_whole_open', g.opened, 'history_whole_commented', g.commented,
    'history_whole_closed', g.closed, 'history_whole_reopened', g.reopened, 'history_year_open', 0,
    'history_year_commented', 0, 'history_year_closed', 0, 'history_year_reopened', 0,
    'last_year_activity', repeat('3', 371), 'currently_open_count', g.notes_open,
    'currently_closed_count', g.notes_closed, 'notes_backlog_size', g.notes_open, 'notes_resolved_count', g.closed,
    'active_users_count', g.users_active, 'top_countries', '[]'::jsonb, 'applications_used', '[]'::jsonb,
    'notes_age_distribution', jsonb_build_object('0-7_days', 0, '8-30_days', 0, '31-90_days', 0, '90_plus_days', g.notes_open)
);
