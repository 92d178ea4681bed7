-- Columns of a table in order, without those matching %(skip)s: for bronze that is
-- the engine-managed `_dwh_*` columns; for the source an empty pattern skips nothing.
SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute AS a
WHERE a.attrelid = to_regclass(%(relation)s)
  AND a.attnum > 0
  AND NOT a.attisdropped
  AND a.attname NOT LIKE %(skip)s
ORDER BY a.attnum;
