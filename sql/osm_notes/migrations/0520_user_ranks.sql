-- A user's ranks leave datamart_users. One user who gains an action moves the rank of
-- every user below them, so a refresh changed most of the 243k ranks each time: it
-- rewrote every wide row (~200 MB at 5M actions) and changed every row's hash, so the
-- export rendered every profile again.
--
-- A rank (ties share one) follows from the count alone: 1 + the users with a larger
-- count. So the refresh keeps one row per distinct count and measure here (a few
-- thousand, however many users) and writes only the levels that moved;
-- repeatable/R10_dwh_access.sql's view datamart_user_ranks gives each user theirs. The
-- next refresh (every ETL run has one) fills the levels.
-- Countries (a few hundred rows) keep their ranks in their row.
CREATE TABLE {dwh}.datamart_user_rank_levels (
    measure  text NOT NULL CHECK (measure IN ('actions', 'closed')),
    value    integer NOT NULL,
    rank     integer NOT NULL,
    PRIMARY KEY (measure, value)
);

ALTER TABLE {dwh}.datamart_users DROP COLUMN rank_by_actions, DROP COLUMN rank_by_closed;
