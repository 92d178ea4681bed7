-- The state an incremental run and a rebuild must agree on, one hash per entity: a note
-- (its facts in sequence with their hashtags, and its dim_notes row; fact ids are
-- surrogate and differ after a rebuild), a user, a country and the global row of the
-- datamarts (every column, profile and ranks included).
CREATE TEMP VIEW check_state AS
WITH
tags AS (
    SELECT fact_id, array_agg(hashtag_key ORDER BY position) AS tags
    FROM {dwh}.fact_hashtags
    GROUP BY fact_id
),

note_facts AS (
    SELECT
        f.note_id,
        string_agg((to_jsonb(f) - 'fact_id')::text || coalesce(t.tags::text, ''), ',' ORDER BY f.sequence)
            AS facts
    FROM {dwh}.facts AS f
    LEFT JOIN tags AS t USING (fact_id)
    GROUP BY f.note_id
)

SELECT 'note' AS kind, n.note_id::bigint AS entity_id, md5(to_jsonb(n)::text || coalesce(f.facts, '')) AS row_hash
FROM {dwh}.dim_notes AS n
LEFT JOIN note_facts AS f USING (note_id)
UNION ALL
-- facts of a note without a dim_notes row (never expected: it would show here)
SELECT 'note', f.note_id, md5(f.facts)
FROM note_facts AS f
WHERE NOT EXISTS (SELECT FROM {dwh}.dim_notes AS n WHERE n.note_id = f.note_id)
UNION ALL
SELECT 'user', d.user_id, md5(to_jsonb(d)::text || coalesce(r::text, ''))
FROM {dwh}.datamart_users AS d
LEFT JOIN {dwh}.datamart_user_ranks AS r USING (user_id)
UNION ALL
SELECT 'country', d.country_id, md5(to_jsonb(d)::text) FROM {dwh}.datamart_countries AS d
UNION ALL
SELECT 'global', d.id, md5(to_jsonb(d)::text) FROM {dwh}.datamart_global AS d;
