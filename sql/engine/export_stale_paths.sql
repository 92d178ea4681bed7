-- Before export_commit_state: paths of the last version that the new one no longer has
-- (the entity left the datamart, or its document moved to another path). A target that
-- publishes in place (S3) deletes them once the new documents are written.
SELECT s.path
FROM {control}.export_documents AS s
WHERE NOT EXISTS (SELECT 1 FROM export_rendered AS r WHERE r.path = s.path)
    AND (
        NOT EXISTS (SELECT 1 FROM export_hashes AS h WHERE h.document = s.document AND h.id = s.id)
        OR EXISTS (SELECT 1 FROM export_rendered AS r WHERE r.document = s.document AND r.id = s.id)
    )
ORDER BY s.path
