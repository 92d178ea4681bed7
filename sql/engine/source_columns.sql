-- Columns of a source table in order (all of them: the catalog may use any).
SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute AS a
WHERE a.attrelid = to_regclass(%(relation)s)
  AND a.attnum > 0
  AND NOT a.attisdropped
  AND a.attname NOT LIKE '\_dwh\_%%'
ORDER BY a.attnum;
