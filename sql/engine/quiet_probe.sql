-- What the quiet-window probe (window_has_rows.sql) would cost on a source table:
-- `indexed`, whether a valid btree index leads with its watermark column (the probe
-- reads the index), and `heap_bytes`, the size of a plain table's heap (what the probe
-- scans without one). A view or a partitioned parent: no heap (NULL); a missing table:
-- no row. Neither is probed by a scan.
SELECT
    EXISTS (
        SELECT
        FROM pg_index AS i
        JOIN pg_class AS ix ON ix.oid = i.indexrelid
        JOIN pg_am AS am ON am.oid = ix.relam
        JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = t.oid
          AND a.attname = %(column)s
          AND am.amname = 'btree'
          AND i.indisvalid
          AND i.indpred IS NULL
    ) AS indexed,
    CASE WHEN t.relkind = 'r' THEN pg_relation_size(t.oid) END AS heap_bytes
FROM pg_class AS t
JOIN pg_namespace AS n ON n.oid = t.relnamespace
WHERE n.nspname = %(schema)s
  AND t.relname = %(table)s;
