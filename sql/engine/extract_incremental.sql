-- Watermarked extract with a closed upper bound (seed §4 Phase E, §5.1, §5.2).
COPY (
    SELECT {select}
    FROM {source}
    WHERE {watermark} > %(lower)s
      AND {watermark} <= %(upper)s
    ORDER BY {watermark}
) TO STDOUT WITH (FORMAT csv);
