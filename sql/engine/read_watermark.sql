SELECT last_extracted_at
FROM {control}.extract_watermarks
WHERE table_name = %(table)s;
