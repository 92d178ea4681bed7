-- One key range of a split extract: the watermark window of extract_incremental.sql,
-- cut to `first <= column < stop`; the ranges are disjoint and cover the window.
COPY (
    SELECT {select}
    FROM {source}
    WHERE {watermark} > %(lower)s
      AND {watermark} <= %(upper)s
      AND {column} >= %(first)s
      AND {column} < %(stop)s
    ORDER BY {watermark}
) TO STDOUT WITH (FORMAT csv);
