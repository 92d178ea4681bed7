-- global.json: overall totals and trends (schema: global.schema.json). A single
-- document: one row with one column, doc; no datamart row means nothing to publish yet.
SELECT json_build_object(
    'actions', json_build_object(
        'total', g.actions,
        'opened', g.opened,
        'commented', g.commented,
        'closed', g.closed,
        'reopened', g.reopened,
        'hidden', g.hidden,
        'anonymous', g.anonymous_actions,
        'invalid_transitions', g.invalid_transitions
    ),
    'actions_by_year', g.actions_by_year,
    'opened_by_month', g.opened_by_month,
    'closed_by_month', g.closed_by_month,
    'first_action_at', g.first_action_at,
    'last_action_at', g.last_action_at,
    'notes', json_build_object(
        'total', g.notes,
        'open', g.notes_open,
        'closed', g.notes_closed,
        'hidden', g.notes_hidden
    ),
    'users_active', g.users_active,
    'countries_active', g.countries_active,
    'resolution', json_build_object(
        'count', g.resolutions,
        'mean_days', g.mean_resolution_days,
        'median_days', g.median_resolution_days
    ),
    'top_countries', g.top_countries,
    'top_users', g.top_users,
    'top_hashtags', g.top_hashtags,
    'top_applications', g.top_applications,
    'activity', json_build_object(
        'by_hour_utc', g.activity_by_hour,
        'by_iso_weekday', g.activity_by_weekday
    )
) AS doc
FROM {dwh}.datamart_global AS g
WHERE g.id = 1
