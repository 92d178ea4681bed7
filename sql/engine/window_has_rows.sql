-- Whether an incremental table has any row in its window: the same bounds as
-- extract_incremental.sql, answered from the watermark's index, or by scanning a table
-- small enough for it (quiet_probe.sql, DWH_QUIET_PROBE_SCAN_MB).
SELECT EXISTS (
    SELECT
    FROM {source}
    WHERE {watermark} > %(lower)s
      AND {watermark} <= %(upper)s
);
