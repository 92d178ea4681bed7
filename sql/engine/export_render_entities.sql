-- The documents to render of one per-entity document, built by the database: only
-- the entities export_hash_entities picked (a hash semi-join, so no other document is built).
SELECT d.id::text, d.row_hash::text, d.doc::text
FROM (
{query}
) AS d
WHERE d.id::text IN (
    SELECT x.id FROM export_changed AS x WHERE x.document = {document}
)
