-- One document per country: countries/<country_id>.json (schema: countries.schema.json).
-- Same columns as users.sql: id, row_hash, doc.
SELECT
    c.country_id AS id,
    md5(c::text) AS row_hash,
    json_build_object(
        'country_id', c.country_id,
        'name', c.name,
        'name_en', c.name_en,
        'iso_alpha2', c.iso_alpha2,
        'iso_alpha3', c.iso_alpha3,
        'actions', json_build_object(
            'total', c.actions,
            'opened', c.opened,
            'commented', c.commented,
            'closed', c.closed,
            'reopened', c.reopened,
            'hidden', c.hidden
        ),
        'actions_by_year', c.actions_by_year,
        'first_action_at', c.first_action_at,
        'last_action_at', c.last_action_at,
        'notes', json_build_object(
            'opened', c.notes_opened,
            'opened_still_open', c.notes_opened_still_open
        ),
        'users_active', c.users_active,
        'resolution', json_build_object(
            'count', c.resolutions,
            'mean_days', c.mean_resolution_days,
            'median_days', c.median_resolution_days
        ),
        'top_users', c.top_users,
        'top_hashtags', c.top_hashtags,
        'activity', json_build_object(
            'by_hour_utc', c.activity_by_hour,
            'by_iso_weekday', c.activity_by_weekday
        ),
        'rank', json_build_object(
            'by_actions', c.rank_by_actions,
            'by_closed', c.rank_by_closed
        )
    ) AS doc
FROM {dwh}.datamart_countries AS c
