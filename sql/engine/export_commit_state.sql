-- The new version's document list, inside the export's transaction: it commits only
-- once the version is published, so a rejected document is rendered again next run.
DELETE FROM {control}.export_documents AS s
WHERE NOT EXISTS (
    SELECT 1 FROM export_hashes AS h WHERE h.document = s.document AND h.id = s.id
);

INSERT INTO {control}.export_documents AS s (document, id, row_hash, sha256, path, version)
SELECT r.document, r.id, r.row_hash, r.sha256, r.path, {version}
FROM export_rendered AS r
ON CONFLICT (document, id) DO UPDATE
SET row_hash = excluded.row_hash,
    sha256 = excluded.sha256,
    path = excluded.path,
    version = excluded.version
