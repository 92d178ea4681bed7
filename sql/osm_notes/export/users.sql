-- One document per user: users/<fanout>/<user_id>.json (schema: users.schema.json).
-- Columns the export expects of a per-entity document: id (file name), row_hash (a
-- hash of the datamart row: when it changes the document is rendered again) and doc.
-- Only the rows the export asks for are rendered: it joins on id and reads doc last.
SELECT
    u.user_id AS id,
    md5(u::text) AS row_hash,
    json_build_object(
        'user_id', u.user_id,
        'username', u.username,
        'actions', json_build_object(
            'total', u.actions,
            'opened', u.opened,
            'commented', u.commented,
            'closed', u.closed,
            'reopened', u.reopened,
            'hidden', u.hidden
        ),
        'actions_by_year', u.actions_by_year,
        'first_action_at', u.first_action_at,
        'last_action_at', u.last_action_at,
        'notes', json_build_object(
            'opened', u.notes_opened,
            'opened_still_open', u.notes_opened_still_open
        ),
        'resolution', json_build_object(
            'count', u.resolutions,
            'mean_days', u.mean_resolution_days,
            'median_days', u.median_resolution_days
        ),
        'top_countries', u.top_countries,
        'top_hashtags', u.top_hashtags,
        'activity', json_build_object(
            'by_hour_utc', u.activity_by_hour,
            'by_iso_weekday', u.activity_by_weekday
        ),
        'rank', json_build_object(
            'by_actions', u.rank_by_actions,
            'by_closed', u.rank_by_closed
        )
    ) AS doc
FROM {dwh}.datamart_users AS u
