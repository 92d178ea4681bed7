-- indexes/users.json: what the viewer's lists search and sort on, nothing more
-- (schema: users_index.schema.json); every entry has a users/ document (same filter
-- as users.sql). Whole-history and current-year opens and closes keep ~300k entries
-- at a few tens of MB.
SELECT coalesce(
    json_agg(
        json_build_object(
            'user_id', u.user_id,
            'username', u.username,
            'history_whole_open', (u.profile ->> 'history_whole_open')::integer,
            'history_whole_closed', (u.profile ->> 'history_whole_closed')::integer,
            'history_year_open', (u.profile ->> 'history_year_open')::integer,
            'history_year_closed', (u.profile ->> 'history_year_closed')::integer
        )
        ORDER BY u.user_id
    ),
    '[]'::json
) AS doc
FROM {dwh}.datamart_users AS u
WHERE u.username IS NOT NULL AND u.user_id >= 1
