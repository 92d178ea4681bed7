-- global_stats.json: the whole of OSM notes, the viewer's global statistics (schema:
-- global_stats.schema.json). A single document: one row with one column, doc; no
-- datamart row means nothing to publish yet.
SELECT g.profile AS doc
FROM {dwh}.datamart_global AS g
WHERE g.id = 1
