-- Row hashes of one per-entity document (sql/<pipeline>/export/<name>.sql, the query placeholder),
-- then the entities to render: new, changed since the last publish, or all ({full}).
-- Only id and row_hash are read, so no document is built here.
INSERT INTO export_hashes (document, id, row_hash)
SELECT {document}, d.id::text, d.row_hash::text
FROM (
{query}
) AS d;

INSERT INTO export_changed (document, id)
SELECT h.document, h.id
FROM export_hashes AS h
LEFT JOIN {control}.export_documents AS s
    ON s.document = h.document AND s.id = h.id
WHERE h.document = {document}
  AND ({full} OR s.row_hash IS DISTINCT FROM h.row_hash);

-- Fresh statistics, so the render's semi-join is planned on real counts.
ANALYZE export_hashes, export_changed
