-- SRIDs present in a geometry column, and whether any non-null geometry exists:
-- an all-NULL bronze column where the source has geometries is the classic EWKT bug.
SELECT coalesce(array_agg(DISTINCT ST_SRID({geom})) FILTER (WHERE {geom} IS NOT NULL), '{{}}')
FROM {relation};
