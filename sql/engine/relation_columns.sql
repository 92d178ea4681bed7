-- Columns of a table in order, without those matching %(skip)s: for bronze that is
-- the engine-managed `_dwh_*` columns; for the source an empty pattern skips nothing.
-- Type (format_type, so `geometry(Point,4326)` carries type and SRID) and NOT NULL
-- are what the drift check (dwh/drift.py) compares between source and bronze.
SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_attribute AS a
WHERE a.attrelid = to_regclass(%(relation)s)
  AND a.attnum > 0
  AND NOT a.attisdropped
  AND a.attname NOT LIKE %(skip)s
ORDER BY a.attnum;
