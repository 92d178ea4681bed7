-- Entities whose rebuilt state differs from the incremental one kept by snapshot.sql
-- (changed, only before, or only after): per kind, how many and the first ids.
WITH
differing AS (
    SELECT coalesce(b.kind, a.kind) AS kind, coalesce(b.entity_id, a.entity_id) AS entity_id
    FROM {dwh}.rebuild_check AS b
    FULL JOIN check_state AS a ON a.kind = b.kind AND a.entity_id = b.entity_id
    WHERE b.row_hash IS DISTINCT FROM a.row_hash
)

SELECT kind, count(*) AS entities, (array_agg(entity_id ORDER BY entity_id))[1:10] AS examples
FROM differing
GROUP BY kind
ORDER BY kind;
