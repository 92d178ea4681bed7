-- indexes/users.json: what a list view searches and sorts on, nothing more (schema:
-- users_index.schema.json). Short keys keep ~300k entries at a few MB.
SELECT coalesce(
    json_agg(
        json_build_object(
            'id', u.user_id,
            'name', u.username,
            'actions', u.actions,
            'closed', u.closed,
            'rank', u.rank_by_actions
        )
        ORDER BY u.user_id
    ),
    '[]'::json
) AS doc
FROM {dwh}.datamart_users AS u
