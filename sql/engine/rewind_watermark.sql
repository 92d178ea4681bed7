-- Backfill / reseed (seed §11): move a watermark back, never forward, so a rewind can
-- only cause re-extraction (harmless with ON CONFLICT), never a gap. Every run that
-- exists now (one may still wait in exports/ or be extracting) is fenced off: its
-- load must not undo the rewind (mark_loaded.sql).
UPDATE {control}.extract_watermarks
SET last_extracted_at = %(to)s,
    rewound_through_run = (
        SELECT coalesce(max(r.run_id), 0) FROM {control}.extract_runs AS r
        WHERE r.table_name = %(table)s
    )
WHERE table_name = %(table)s
  AND last_extracted_at >= %(to)s
RETURNING table_name;
