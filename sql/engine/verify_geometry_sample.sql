-- A deterministic sample of keyed geometries (EWKT keeps the SRID) to compare sides.
SELECT {key_text} AS k, {ewkt} AS g
FROM {relation}
WHERE {in_scope}
ORDER BY {key}
LIMIT 200;
