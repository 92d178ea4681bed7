-- Whether a valid btree index of the source table leads with its watermark column, so
-- the quiet-window probe (window_has_rows.sql) reads the index and never scans the table
-- a second time before an extract that finds rows. A view or an unindexed table: false.
SELECT EXISTS (
    SELECT
    FROM pg_index AS i
    JOIN pg_class AS t ON t.oid = i.indrelid
    JOIN pg_namespace AS n ON n.oid = t.relnamespace
    JOIN pg_class AS ix ON ix.oid = i.indexrelid
    JOIN pg_am AS am ON am.oid = ix.relam
    JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE n.nspname = %(schema)s
      AND t.relname = %(table)s
      AND a.attname = %(column)s
      AND am.amname = 'btree'
      AND i.indisvalid
      AND i.indpred IS NULL
);
