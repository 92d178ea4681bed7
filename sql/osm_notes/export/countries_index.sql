-- indexes/countries.json: the viewer's country list (schema: countries_index.schema.json).
-- The contract's index takes relation ids >= 1 only, so international waters (-1) is
-- not listed; its countries/-1.json profile is still published.
SELECT coalesce(
    json_agg(
        json_strip_nulls(json_build_object(
            'country_id', c.country_id,
            'country_name', c.name,
            'country_name_en', c.name_en,
            'date_starting_creating_notes', c.profile -> 'date_starting_creating_notes',
            'history_whole_open', c.profile -> 'history_whole_open',
            'history_whole_commented', c.profile -> 'history_whole_commented',
            'history_whole_closed', c.profile -> 'history_whole_closed',
            'history_year_open', c.profile -> 'history_year_open',
            'history_year_commented', c.profile -> 'history_year_commented',
            'history_year_closed', c.profile -> 'history_year_closed',
            'avg_days_to_resolution', c.profile -> 'avg_days_to_resolution',
            'resolution_rate', c.profile -> 'resolution_rate',
            'notes_resolved_count', c.profile -> 'notes_resolved_count',
            'notes_still_open_count', c.profile -> 'notes_still_open_count'
        ))
        ORDER BY c.country_id
    ),
    '[]'::json
) AS doc
FROM {dwh}.datamart_countries AS c
WHERE c.country_id >= 1
