-- The span of the split column among the rows a split extract reads (catalog `split:`).
SELECT min({column}), max({column})
FROM {source}
WHERE {watermark} > %(lower)s
  AND {watermark} <= %(upper)s;
