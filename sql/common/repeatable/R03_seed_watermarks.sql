-- One watermark row per catalog table, at 2000-01-01 so the first run back-fills all
-- history (seed §4 Phase A). Existing rows are never touched.
INSERT INTO {control}.extract_watermarks (table_name)
SELECT unnest({tables}::text[])
ON CONFLICT (table_name) DO NOTHING;
