-- After export_commit_state: documents the new version takes unchanged from the last.
SELECT path FROM {control}.export_documents WHERE version <> %s ORDER BY path
