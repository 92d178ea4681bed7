-- A user's ranks live in a narrow table of their own. One user who gains an action
-- moves the rank of every user below them, so a refresh changes most of the 243k
-- ranks each time: in datamart_users that rewrote every wide row (~200 MB at 5M
-- actions, 5-7 s) and changed every row's hash, so the export rendered every profile
-- again. Here a refresh rewrites ~10 MB and datamart_users keeps the rows it did not
-- recompute. Countries (a few hundred rows) keep their ranks in their row.
CREATE TABLE {dwh}.datamart_user_ranks (
    user_id          integer PRIMARY KEY,
    rank_by_actions  integer NOT NULL,
    rank_by_closed   integer NOT NULL
);

INSERT INTO {dwh}.datamart_user_ranks (user_id, rank_by_actions, rank_by_closed)
SELECT user_id, rank_by_actions, rank_by_closed
FROM {dwh}.datamart_users
WHERE rank_by_actions IS NOT NULL AND rank_by_closed IS NOT NULL;

ALTER TABLE {dwh}.datamart_users DROP COLUMN rank_by_actions, DROP COLUMN rank_by_closed;
