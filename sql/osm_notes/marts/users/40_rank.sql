-- Ranks among all users (ties share a rank): recomputed over the whole table, so the
-- rows not refreshed today still rank right; only changed ranks are written.
WITH ranked AS (
    SELECT
        user_id,
        rank() OVER (ORDER BY actions DESC) AS by_actions,
        rank() OVER (ORDER BY closed DESC) AS by_closed
    FROM {dwh}.datamart_users
)

UPDATE {dwh}.datamart_users AS d
SET
    rank_by_actions = r.by_actions,
    rank_by_closed = r.by_closed
FROM ranked AS r
WHERE d.user_id = r.user_id
    AND (d.rank_by_actions, d.rank_by_closed) IS DISTINCT FROM (r.by_actions, r.by_closed);
