-- One document per named user: users/<h0>/<h1>/<h2>/<user_id>.json, the viewer's user
-- profile (schema: users.schema.json). Columns the export expects of a per-entity
-- document: id (file name), row_hash (a hash of the datamart row: when it changes the
-- document is rendered again) and doc. The export joins on id and reads doc last, so
-- only the rows it asks for are built.
-- A uid the users table has not named yet is left out until it is (the contract needs
-- a username); lastest_* repeat latest_* under the spelling the viewer's pages read.
SELECT
    u.user_id AS id,
    md5(u::text) AS row_hash,
    jsonb_strip_nulls(
        jsonb_build_object(
            'user_id', u.user_id,
            'username', u.username,
            'lastest_open_note_id', u.profile -> 'latest_open_note_id',
            'lastest_commented_note_id', u.profile -> 'latest_commented_note_id',
            'lastest_closed_note_id', u.profile -> 'latest_closed_note_id',
            'lastest_reopened_note_id', u.profile -> 'latest_reopened_note_id'
        )
        || u.profile
    ) AS doc
FROM {dwh}.datamart_users AS u
WHERE u.username IS NOT NULL AND u.user_id >= 1
