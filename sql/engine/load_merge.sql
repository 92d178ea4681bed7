-- Merge for mutable source rows: insert new keys, update only rows that changed, leave
-- identical rows untouched (no write, no dead tuple, _dwh_loaded_at unchanged).
WITH written AS (
    INSERT INTO {target} AS t ({columns})
    SELECT {columns} FROM {stage}
    ON CONFLICT ({key}) DO UPDATE
    SET {assignments}
    WHERE ({current}) IS DISTINCT FROM ({excluded})
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)
FROM written;
