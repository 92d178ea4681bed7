-- The documents to render of one per-entity document, built by the database.
SELECT d.id::text, c.row_hash, d.doc::text
FROM (
{query}
) AS d
JOIN export_changed AS x ON x.document = {document} AND x.id = d.id::text
JOIN export_hashes AS c ON c.document = {document} AND c.id = x.id
