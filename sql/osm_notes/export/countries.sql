-- One document per country: countries/<country_id>.json, the viewer's country profile
-- (schema: countries.schema.json). Same columns as users.sql: id, row_hash, doc.
-- International waters (-1) has a profile too; only the index leaves it out.
SELECT
    c.country_id AS id,
    md5(c::text) AS row_hash,
    jsonb_strip_nulls(
        jsonb_build_object(
            'country_id', c.country_id,
            'country_name', c.name,
            'country_name_en', c.name_en,
            'lastest_open_note_id', c.profile -> 'latest_open_note_id',
            'lastest_commented_note_id', c.profile -> 'latest_commented_note_id',
            'lastest_closed_note_id', c.profile -> 'latest_closed_note_id',
            'lastest_reopened_note_id', c.profile -> 'latest_reopened_note_id'
        )
        || c.profile
    ) AS doc
FROM {dwh}.datamart_countries AS c
