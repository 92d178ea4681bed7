-- Shared by the users and countries datamarts: the profile's fields that count relative
-- to today (dm_period.today, UTC): this year's, month's and day's actions of each kind,
-- and the tiles of the last 53 weeks. For the entities recomputed whole (dm_entities:
-- 35_profile.sql puts these in their profile) and for those whose only change is a new
-- day (dm_moved, 10_targets.sql: 38_write.sql merges these into their row), from their
-- days in that window.
CREATE TEMP TABLE dm_relative ON COMMIT DROP AS
WITH
period AS (
    SELECT
        today,
        to_char(today, 'YYYYMMDD')::integer AS day_key,
        to_char(today, 'YYYYMM')::integer AS month_key,
        extract(YEAR FROM today)::integer AS year,
        to_char(least(date_trunc('year', today)::date, today - 370), 'YYYYMMDD')::integer AS since_key
    FROM dm_period
),

ids AS (
    SELECT entity_id FROM dm_entities
    UNION ALL
    SELECT id FROM dm_moved
),

-- The window's days: the whole-build entities' from dm_days (25_state.sql imported all
-- of theirs), the moved ones' from the state.
days AS (
    SELECT d.entity_id, d.action, d.date_key, d.n
    FROM dm_days AS d, period AS p
    WHERE d.date_key >= p.since_key
    UNION ALL
    SELECT d.entity_id, d.action, d.date_key, d.n
    FROM dm_moved AS m
    CROSS JOIN dm_kind AS k
    CROSS JOIN period AS p
    JOIN {dwh}.mart_days AS d ON d.kind = k.kind AND d.entity_id = m.id AND d.date_key >= p.since_key
),

-- GitHub-style tiles: one digit per day of the last 53 weeks, oldest first, each
-- floor(log2(actions + 1)) capped at 9 (0 = none, 1 = 1-2 actions ... 9 = 511 and more).
-- Built from the active days only: each adds the zeros of the quiet days before it.
daily AS (
    SELECT
        d.entity_id,
        to_date(d.date_key::text, 'YYYYMMDD') - (p.today - 370) AS pos,
        sum(d.n) AS n
    FROM days AS d, period AS p
    WHERE d.date_key >= to_char(p.today - 370, 'YYYYMMDD')::integer
    GROUP BY d.entity_id, d.date_key, p.today
),

tiles AS (
    SELECT
        entity_id,
        string_agg(repeat('0', pos - previous - 1) || least(9, floor(log(2, n + 1)))::integer::text, '' ORDER BY pos)
        || repeat('0', 370 - max(pos)) AS doc
    FROM (
        SELECT entity_id, pos, n, coalesce(lag(pos) OVER (PARTITION BY entity_id ORDER BY pos), -1) AS previous
        FROM daily
    ) AS days
    GROUP BY entity_id
)

SELECT
    i.entity_id,
    json_build_object(
        'history_year_open',
        coalesce(sum(d.n) FILTER (WHERE d.action = 'opened' AND d.date_key / 10000 = p.year), 0),
        'history_year_commented',
        coalesce(sum(d.n) FILTER (WHERE d.action = 'commented' AND d.date_key / 10000 = p.year), 0),
        'history_year_closed',
        coalesce(sum(d.n) FILTER (WHERE d.action = 'closed' AND d.date_key / 10000 = p.year), 0),
        'history_year_reopened',
        coalesce(sum(d.n) FILTER (WHERE d.action = 'reopened' AND d.date_key / 10000 = p.year), 0),
        'history_month_open',
        coalesce(sum(d.n) FILTER (WHERE d.action = 'opened' AND d.date_key / 100 = p.month_key), 0),
        'history_month_commented',
        coalesce(sum(d.n) FILTER (WHERE d.action = 'commented' AND d.date_key / 100 = p.month_key), 0),
        'history_month_closed',
        coalesce(sum(d.n) FILTER (WHERE d.action = 'closed' AND d.date_key / 100 = p.month_key), 0),
        'history_month_reopened',
        coalesce(sum(d.n) FILTER (WHERE d.action = 'reopened' AND d.date_key / 100 = p.month_key), 0),
        'history_day_open', coalesce(sum(d.n) FILTER (WHERE d.action = 'opened' AND d.date_key = p.day_key), 0),
        'history_day_commented',
        coalesce(sum(d.n) FILTER (WHERE d.action = 'commented' AND d.date_key = p.day_key), 0),
        'history_day_closed', coalesce(sum(d.n) FILTER (WHERE d.action = 'closed' AND d.date_key = p.day_key), 0),
        'history_day_reopened',
        coalesce(sum(d.n) FILTER (WHERE d.action = 'reopened' AND d.date_key = p.day_key), 0),
        'last_year_activity', coalesce(t.doc, repeat('0', 371))
    ) AS doc
FROM ids AS i
CROSS JOIN period AS p
LEFT JOIN days AS d USING (entity_id)
LEFT JOIN tiles AS t USING (entity_id)
GROUP BY i.entity_id, t.doc;

ALTER TABLE dm_relative ADD PRIMARY KEY (entity_id);
