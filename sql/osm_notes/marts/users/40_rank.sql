-- Ranks among all users (ties share a rank), as levels: a user's rank by a count is 1 +
-- the users with a larger count, so datamart_user_rank_levels keeps one row per
-- distinct count (migrations/0520_user_ranks.sql; the view datamart_user_ranks gives
-- each user theirs). Recomputed over the whole datamart, so the rows not refreshed
-- today still rank right; only the levels that changed are written.
CREATE TEMP TABLE dm_rank_levels ON COMMIT DROP AS
WITH counts AS (
    SELECT
        CASE WHEN grouping(actions) = 0 THEN 'actions' ELSE 'closed' END AS measure,
        CASE WHEN grouping(actions) = 0 THEN actions ELSE closed END AS value,
        count(*) AS users
    FROM {dwh}.datamart_users
    GROUP BY GROUPING SETS ((actions), (closed))
)

SELECT
    measure,
    value,
    (1 + coalesce(sum(users) OVER (
        PARTITION BY measure ORDER BY value DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ), 0))::integer AS rank
FROM counts;

DELETE FROM {dwh}.datamart_user_rank_levels AS l
WHERE NOT EXISTS (SELECT FROM dm_rank_levels AS n WHERE n.measure = l.measure AND n.value = l.value);

INSERT INTO {dwh}.datamart_user_rank_levels AS l (measure, value, rank)
SELECT measure, value, rank FROM dm_rank_levels
ON CONFLICT (measure, value) DO UPDATE
SET rank = excluded.rank
WHERE l.rank <> excluded.rank;
