-- Incremental tables whose natural key has no PRIMARY KEY/UNIQUE (constraint or plain
-- unique index) on exactly those columns in bronze: ON CONFLICT would fail, or a replay
-- would duplicate rows (seed §5.3). The same rule as the R90 audit, as rows to report.
SELECT e.tbl, array_to_string(e.cols, ', ') AS cols
FROM jsonb_to_recordset(%(expected_keys)s::jsonb) AS e (tbl text, cols text[])
WHERE NOT EXISTS (
    SELECT
    FROM pg_index AS i
    JOIN pg_class AS r ON r.oid = i.indrelid
    JOIN pg_namespace AS n ON n.oid = r.relnamespace
    WHERE n.nspname = %(bronze)s::text
      AND r.relname = e.tbl
      AND i.indisunique
      AND i.indpred IS NULL
      AND i.indexprs IS NULL
      AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
           FROM pg_attribute AS a
           WHERE a.attrelid = r.oid AND a.attnum = ANY (i.indkey::int2[]))
          = (SELECT array_agg(c ORDER BY c) FROM unnest(e.cols) AS c)
)
ORDER BY e.tbl;
