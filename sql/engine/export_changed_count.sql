-- How many documents of one per-entity document will be rendered.
SELECT count(*) FROM export_changed WHERE document = %s
