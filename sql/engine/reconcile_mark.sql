-- Bronze rows of the chunk whose key the source no longer has: marked, never deleted
-- (the audit trail holds). `_dwh_loaded_at` moves too, so a transform that follows
-- bronze by load time sees the change. Only rows loaded before the keys were read.
WITH marked AS (
    UPDATE {bronze_table} AS b
    SET _dwh_deleted_at = now(), _dwh_loaded_at = now()
    WHERE {in_chunk}
        AND b._dwh_deleted_at IS NULL
        AND b._dwh_loaded_at < %(started)s
        AND NOT EXISTS (SELECT FROM dwh_source_keys AS s WHERE {same_key})
    RETURNING 1
),

-- A key marked before that the source has again (restored, or a key reused): unmarked.
restored AS (
    UPDATE {bronze_table} AS b
    SET _dwh_deleted_at = NULL, _dwh_loaded_at = now()
    WHERE {in_chunk}
        AND b._dwh_deleted_at IS NOT NULL
        AND EXISTS (SELECT FROM dwh_source_keys AS s WHERE {same_key})
    RETURNING 1
)

SELECT
    (SELECT count(*) FROM dwh_source_keys),
    (SELECT count(*) FROM marked),
    (SELECT count(*) FROM restored);
