-- A single document (its query returns one row with doc) with the hash that decides
-- whether it changed since the last publish.
SELECT md5(d.doc::text), d.doc::text
FROM (
{query}
) AS d
