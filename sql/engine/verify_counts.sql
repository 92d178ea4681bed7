-- Row parity for one table on one side. On the source, an incremental table counts
-- only rows at or below the loaded watermark: rows above it are in flight, not missing.
SELECT count(*) FROM {relation} WHERE {in_scope};
