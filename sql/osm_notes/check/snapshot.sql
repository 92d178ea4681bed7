-- Keep the incremental state (check_state, state.sql) before the rebuild replaces it.
TRUNCATE {dwh}.rebuild_check;

INSERT INTO {dwh}.rebuild_check (kind, entity_id, row_hash)
SELECT kind, entity_id, row_hash FROM check_state;
