-- The datamart rows of the countries in dm_targets: the shared metrics and profile of
-- _entity/ under the country's names (a country without facts has no row).
DELETE FROM {dwh}.datamart_countries AS d
USING dm_targets AS t
WHERE d.country_id = t.id;

INSERT INTO {dwh}.datamart_countries (
    country_id, name, name_en, iso_alpha2, iso_alpha3, actions, opened, commented, closed, reopened,
    hidden, actions_by_year, first_action_at, last_action_at, notes_opened, notes_opened_still_open,
    users_active, resolutions, mean_resolution_days, median_resolution_days, top_users, top_hashtags,
    activity_by_hour, activity_by_weekday, rank_by_actions, rank_by_closed, profile
)
SELECT
    m.entity_id, r.name, r.name_en, r.iso_alpha2, r.iso_alpha3, m.actions, m.opened, m.commented, m.closed,
    m.reopened, m.hidden, m.actions_by_year, m.first_action_at, m.last_action_at, m.notes_opened,
    m.notes_opened_still_open, m.peers_active, m.resolutions, m.mean_resolution_days,
    m.median_resolution_days, m.top_peers, m.top_hashtags, m.activity_by_hour, m.activity_by_weekday,
    NULL, NULL,  -- ranks: 40_rank.sql, over every country
    p.profile
FROM dm_metrics AS m
JOIN dm_country_rows AS r ON r.country_id = m.entity_id
JOIN dm_profile AS p USING (entity_id);

-- A new day: the rows whose only change is the fields relative to today (dm_moved,
-- 10_targets.sql) take those fields; an unchanged row is not written again.
UPDATE {dwh}.datamart_countries AS d
SET profile = d.profile || r.doc::jsonb
FROM dm_moved AS m
JOIN dm_relative AS r ON r.entity_id = m.id
WHERE d.country_id = m.id
    AND NOT d.profile @> r.doc::jsonb;

INSERT INTO {dwh}.datamart_periods AS p (datamart, as_of)
SELECT 'countries', today FROM dm_period
ON CONFLICT (datamart) DO UPDATE SET as_of = excluded.as_of;
