-- Backfill / reseed (seed §11): move a watermark back, never forward, so a rewind can
-- only cause re-extraction (harmless with ON CONFLICT), never a gap.
UPDATE {control}.extract_watermarks
SET last_extracted_at = %(to)s
WHERE table_name = %(table)s
  AND last_extracted_at >= %(to)s
RETURNING table_name;
