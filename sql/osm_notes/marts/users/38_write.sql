-- The datamart rows of the users in dm_targets: the shared metrics and profile of
-- _entity/ under the user's names (a user without facts has no row), and the one
-- user-only field: notes the user opened and never closed themselves.
DELETE FROM {dwh}.datamart_users AS d
USING dm_targets AS t
WHERE d.user_id = t.id;

INSERT INTO {dwh}.datamart_users (
    user_id, username, actions, opened, commented, closed, reopened, hidden, actions_by_year,
    first_action_at, last_action_at, notes_opened, notes_opened_still_open, resolutions,
    mean_resolution_days, median_resolution_days, top_countries, top_hashtags, activity_by_hour,
    activity_by_weekday, profile
)
SELECT
    m.entity_id, u.username, m.actions, m.opened, m.commented, m.closed, m.reopened, m.hidden,
    m.actions_by_year, m.first_action_at, m.last_action_at, m.notes_opened, m.notes_opened_still_open,
    m.resolutions, m.mean_resolution_days, m.median_resolution_days, m.top_peers, m.top_hashtags,
    m.activity_by_hour, m.activity_by_weekday,
    p.profile || CASE
        WHEN m.opened > 0
            THEN jsonb_build_object('notes_opened_but_not_closed_by_user', coalesce(o.n, 0))
        ELSE '{{}}'
    END
FROM dm_metrics AS m
JOIN {dwh}.dim_users AS u ON u.user_id = m.entity_id AND u.is_current
JOIN dm_profile AS p USING (entity_id)
LEFT JOIN {dwh}.mart_opened_unclosed AS o ON o.user_id = m.entity_id;

-- A new day: the rows whose only change is the fields relative to today (dm_moved,
-- 10_targets.sql) take those fields; an unchanged row is not written again.
UPDATE {dwh}.datamart_users AS d
SET profile = d.profile || r.doc::jsonb
FROM dm_moved AS m
JOIN dm_relative AS r ON r.entity_id = m.id
WHERE d.user_id = m.id
    AND NOT d.profile @> r.doc::jsonb;

INSERT INTO {dwh}.datamart_periods AS p (datamart, as_of)
SELECT 'users', today FROM dm_period
ON CONFLICT (datamart) DO UPDATE SET as_of = excluded.as_of;
