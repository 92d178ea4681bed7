-- Synthetic osm_notes datamarts for benchmarks/export_json.py: {users} users and
-- {countries} countries with every column filled the way the refresh fills it
-- (counts that add up, per-year maps, top-5 lists, 24 + 7 activity buckets, names in
-- several scripts), so the export renders and validates documents of realistic size.
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
    (SELECT array_agg((u.id + d) % 9) FROM generate_series(1, 7) AS d),
    NULL, NULL
FROM generate_series(1, {users}) AS u(id)
CROSS JOIN LATERAL (
    SELECT 1 + u.id % 13 AS opened, u.id % 17 AS commented, u.id % 11 AS closed, u.id % 3 AS reopened
) AS a;

UPDATE osm_notes_dwh.datamart_users AS d
SET rank_by_actions = r.by_actions, rank_by_closed = r.by_closed
FROM (
    SELECT user_id,
           rank() OVER (ORDER BY actions DESC) AS by_actions,
           rank() OVER (ORDER BY closed DESC) AS by_closed
    FROM osm_notes_dwh.datamart_users
) AS r
WHERE r.user_id = d.user_id;

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
