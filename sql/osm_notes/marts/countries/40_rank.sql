-- Ranks among all countries (ties share a rank): recomputed over the whole table, so the
-- rows not refreshed today still rank right; only changed ranks are written.
-- International waters (-1) is no country: it keeps its row and profile, never a rank.
WITH ranked AS (
    SELECT
        country_id,
        rank() OVER (ORDER BY actions DESC) AS by_actions,
        rank() OVER (ORDER BY closed DESC) AS by_closed
    FROM {dwh}.datamart_countries
    WHERE country_id <> -1
    UNION ALL
    SELECT country_id, NULL, NULL
    FROM {dwh}.datamart_countries
    WHERE country_id = -1
)

UPDATE {dwh}.datamart_countries AS d
SET
    rank_by_actions = r.by_actions,
    rank_by_closed = r.by_closed
FROM ranked AS r
WHERE d.country_id = r.country_id
    AND (d.rank_by_actions, d.rank_by_closed) IS DISTINCT FROM (r.by_actions, r.by_closed);
