-- metadata.json (schema: metadata.schema.json): rendered on every publish, after every
-- other document (`each_publish` in the catalog), so export_date is the moment this
-- version was built. The totals count exactly the entries of the two indexes.
SELECT json_build_object(
    'export_date', to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
    'export_timestamp', floor(extract(EPOCH FROM statement_timestamp()))::bigint,
    'total_users', (
        SELECT count(*) FROM {dwh}.datamart_users AS u WHERE u.username IS NOT NULL AND u.user_id >= 1
    ),
    'total_countries', (SELECT count(*) FROM {dwh}.datamart_countries AS c WHERE c.country_id >= 1)
) AS doc
