-- The row hash a document was last published with (no row: never published).
SELECT row_hash FROM {control}.export_documents WHERE document = %s AND id = %s
