-- A deterministic sample of keyed values to compare sides: on the source the catalog's
-- declared expression cast to the bronze column's type, in bronze the column it fills
-- (seed §8: a unit conversion or rename fixed in the extract must be what bronze holds).
SELECT {key_text} AS k, ({value})::text AS v
FROM {relation}
WHERE {in_scope}
ORDER BY {key}
LIMIT 200;
