-- Typed staging with only the data columns; geometry input parses EWKT (SRID kept).
CREATE TEMP TABLE {stage} ON COMMIT DROP AS
SELECT {columns} FROM {target} WITH NO DATA;
