-- indexes/countries.json: the country list view (schema: countries_index.schema.json).
SELECT coalesce(
    json_agg(
        json_build_object(
            'id', c.country_id,
            'name', c.name,
            'name_en', c.name_en,
            'iso_alpha2', c.iso_alpha2,
            'actions', c.actions,
            'closed', c.closed,
            'rank', c.rank_by_actions
        )
        ORDER BY c.country_id
    ),
    '[]'::json
) AS doc
FROM {dwh}.datamart_countries AS c
