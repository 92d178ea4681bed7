-- Catalog tables without a watermark row (seed §9: control tables seeded); `dwh migrate`
-- seeds them at 2000-01-01.
SELECT t
FROM unnest(%(tables)s::text[]) AS t
WHERE NOT EXISTS (SELECT FROM {control}.extract_watermarks AS w WHERE w.table_name = t)
ORDER BY t;
