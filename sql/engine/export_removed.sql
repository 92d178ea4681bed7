-- Documents of the last version whose entity left the datamart: not carried over.
SELECT count(*)
FROM {control}.export_documents AS s
WHERE NOT EXISTS (
    SELECT 1 FROM export_hashes AS h WHERE h.document = s.document AND h.id = s.id
)
