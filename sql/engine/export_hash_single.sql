-- A single document's hash, so export_commit_state keeps its row.
INSERT INTO export_hashes (document, id, row_hash) VALUES (%s, '', %s)
