-- Ranks among all users (ties share a rank), in datamart_user_ranks
-- (migrations/0520_user_ranks.sql): recomputed over the whole datamart, so the rows not
-- refreshed today still rank right; only changed ranks are written. A refreshed user
-- who has no row any more (no facts left) loses their ranks.
DELETE FROM {dwh}.datamart_user_ranks AS r
USING dm_targets AS t
WHERE r.user_id = t.id
    AND NOT EXISTS (SELECT FROM {dwh}.datamart_users AS d WHERE d.user_id = t.id);

INSERT INTO {dwh}.datamart_user_ranks AS r (user_id, rank_by_actions, rank_by_closed)
SELECT
    user_id,
    rank() OVER (ORDER BY actions DESC),
    rank() OVER (ORDER BY closed DESC)
FROM {dwh}.datamart_users
ON CONFLICT (user_id) DO UPDATE
SET
    rank_by_actions = excluded.rank_by_actions,
    rank_by_closed = excluded.rank_by_closed
WHERE (r.rank_by_actions, r.rank_by_closed) IS DISTINCT FROM (excluded.rank_by_actions, excluded.rank_by_closed);
