-- Whether an incremental table has any row in its window: the same bounds as
-- extract_incremental.sql, answered from the watermark's index.
SELECT EXISTS (
    SELECT
    FROM {source}
    WHERE {watermark} > %(lower)s
      AND {watermark} <= %(upper)s
);
