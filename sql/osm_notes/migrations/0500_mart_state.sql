-- Compact per-entity state of the datamarts, keyed by (kind, entity_id): kind 'user'
-- (entity = OSM uid), 'country' (OSM relation id) or 'global' (entity 0). Additive
-- counters only: the transform (39_mart_state_before.sql, 43_mart_state.sql) adds the
-- facts of the notes it rebuilt and subtracts what those notes had before, in the
-- transaction that writes the facts, so the state always equals an aggregation of
-- facts. The datamart refresh reads it instead of every fact of a big country or of
-- the whole: its cost follows the increment, not the history. What is not additive
-- (first / last actions, medians) is read at refresh from facts by the indexes below.
--
-- Actions as in the datamarts: opened, commented, closed (valid closes only),
-- reopened, hidden, and invalid_close (closing a closed note: an action, no close).
-- A cell that falls to zero is deleted. The first build (and the nightly rebuild)
-- fills the state from all facts; `mart_state_built` tells the next transform of a
-- warehouse migrated with facts already in place to do so once.

-- Per action: counts, invalid transitions, resolutions (count and sum of days).
-- Kind 'user' includes the anonymous member (-1): the global row counts its actions.
CREATE TABLE {dwh}.mart_totals (
    kind       text NOT NULL,
    entity_id  integer NOT NULL,
    action     text NOT NULL,
    n          integer NOT NULL,
    invalid_n  integer NOT NULL,
    res_n      integer NOT NULL,
    res_sum    numeric NOT NULL,
    PRIMARY KEY (kind, entity_id, action)
);

-- Per action and UTC day (YYYYMMDD): years, months, today, the 53-week tiles, peak days.
CREATE TABLE {dwh}.mart_days (
    kind       text NOT NULL,
    entity_id  integer NOT NULL,
    action     text NOT NULL,
    date_key   integer NOT NULL,
    n          integer NOT NULL,
    res_n      integer NOT NULL,
    res_sum    numeric NOT NULL,
    PRIMARY KEY (kind, entity_id, action, date_key)
);

-- Per action and hour of the week (dim_time_of_week key): activity arrays and grids.
CREATE TABLE {dwh}.mart_hours (
    kind       text NOT NULL,
    entity_id  integer NOT NULL,
    action     text NOT NULL,
    time_of_week_key smallint NOT NULL,
    n          integer NOT NULL,
    PRIMARY KEY (kind, entity_id, action, time_of_week_key)
);

-- Per action and year, the other side: for a user its countries, for a country its
-- actors (anonymous -1 included; the lists leave it out). No 'global' rows: the
-- global row ranks users from mart_totals and countries from their totals.
CREATE TABLE {dwh}.mart_peers (
    kind       text NOT NULL,
    entity_id  integer NOT NULL,
    peer_id    integer NOT NULL,
    action     text NOT NULL,
    year       smallint NOT NULL,
    n          integer NOT NULL,
    PRIMARY KEY (kind, entity_id, peer_id, action, year)
);

-- Per action and hashtag (uses of the hashtag in actions).
CREATE TABLE {dwh}.mart_hashtags (
    kind         text NOT NULL,
    entity_id    integer NOT NULL,
    action       text NOT NULL,
    hashtag_key  integer NOT NULL,
    n            integer NOT NULL,
    PRIMARY KEY (kind, entity_id, action, hashtag_key)
);

-- Per user: notes the user opened and never closed themselves (the profile's
-- notes_opened_but_not_closed_by_user).
CREATE TABLE {dwh}.mart_opened_unclosed (
    user_id  integer PRIMARY KEY,
    n        integer NOT NULL
);

CREATE TABLE {dwh}.mart_state_built (
    built  boolean NOT NULL
);
INSERT INTO {dwh}.mart_state_built VALUES (false);

-- The non-additive metrics, read at refresh for the refreshed entities only: the first
-- and last action of a day (an entity's first / last day comes from mart_days), and
-- the middle resolutions for the medians (an ordered index scan to the middle, or the
-- resolutions of one user).
CREATE INDEX facts_actor_day_idx ON {dwh}.facts (actor_user_key, action_date_key);
CREATE INDEX facts_country_day_idx ON {dwh}.facts (country_key, action_date_key);
CREATE INDEX facts_day_idx ON {dwh}.facts (action_date_key) INCLUDE (days_to_resolution);
CREATE INDEX facts_actor_resolution_idx ON {dwh}.facts (actor_user_key, days_to_resolution)
WHERE days_to_resolution IS NOT NULL;
CREATE INDEX facts_country_resolution_idx ON {dwh}.facts (country_key, days_to_resolution)
WHERE days_to_resolution IS NOT NULL;
CREATE INDEX facts_resolution_idx ON {dwh}.facts (days_to_resolution)
WHERE days_to_resolution IS NOT NULL;
-- The (key, day) indexes serve every lookup by key alone as well.
DROP INDEX {dwh}.facts_actor_user_key_idx;
DROP INDEX {dwh}.facts_country_key_idx;
