-- Datamarts: one wide row per user / country (keyed by the natural OSM id, so a renamed
-- user keeps one row) and one global row, for the JSON export and the API.
-- Refreshed by `datamarts` from sql/osm_notes/marts/; a refresh of the marked entities
-- and a full rebuild produce the same rows.
--
-- Conventions: counts are actions (facts) unless named notes_*; resolution = a valid
-- close, measured in days since the note was last (re)opened; `actions_by_year` is
-- {{"YYYY": {{"<action>": n}}}}; activity arrays are UTC, hours 0..23 and ISO weekdays
-- Monday..Sunday; top lists hold 5 entries ({{"rank", id, name, "actions"}}), ties broken
-- by id or name; ranks are rank() by descending count (ties share a rank).

CREATE TABLE {dwh}.datamart_users (
    user_id                 integer PRIMARY KEY,
    username                text,
    actions                 integer NOT NULL,
    opened                  integer NOT NULL,
    commented               integer NOT NULL,
    closed                  integer NOT NULL,
    reopened                integer NOT NULL,
    hidden                  integer NOT NULL,
    actions_by_year         jsonb NOT NULL,
    first_action_at         timestamptz NOT NULL,
    last_action_at          timestamptz NOT NULL,
    notes_opened            integer NOT NULL,
    notes_opened_still_open integer NOT NULL,
    resolutions             integer NOT NULL,
    mean_resolution_days    numeric(12, 4),
    median_resolution_days  numeric(12, 4),
    top_countries           jsonb NOT NULL,
    top_hashtags            jsonb NOT NULL,
    activity_by_hour        integer[] NOT NULL,
    activity_by_weekday     integer[] NOT NULL,
    rank_by_actions         integer,
    rank_by_closed          integer
);

CREATE TABLE {dwh}.datamart_countries (
    country_id              integer PRIMARY KEY,
    name                    text NOT NULL,
    name_en                 text NOT NULL,
    iso_alpha2              char(2),
    iso_alpha3              char(3),
    actions                 integer NOT NULL,
    opened                  integer NOT NULL,
    commented               integer NOT NULL,
    closed                  integer NOT NULL,
    reopened                integer NOT NULL,
    hidden                  integer NOT NULL,
    actions_by_year         jsonb NOT NULL,
    first_action_at         timestamptz NOT NULL,
    last_action_at          timestamptz NOT NULL,
    notes_opened            integer NOT NULL,
    notes_opened_still_open integer NOT NULL,
    users_active            integer NOT NULL,     -- distinct actors, anonymous excluded
    resolutions             integer NOT NULL,
    mean_resolution_days    numeric(12, 4),
    median_resolution_days  numeric(12, 4),
    top_users               jsonb NOT NULL,       -- anonymous excluded
    top_hashtags            jsonb NOT NULL,
    activity_by_hour        integer[] NOT NULL,
    activity_by_weekday     integer[] NOT NULL,
    rank_by_actions         integer,
    rank_by_closed          integer
);

CREATE TABLE {dwh}.datamart_global (
    id                      smallint PRIMARY KEY CHECK (id = 1),
    actions                 bigint NOT NULL,
    opened                  bigint NOT NULL,
    commented               bigint NOT NULL,
    closed                  bigint NOT NULL,
    reopened                bigint NOT NULL,
    hidden                  bigint NOT NULL,
    actions_by_year         jsonb NOT NULL,
    opened_by_month         jsonb NOT NULL,       -- {{"YYYY-MM": notes opened}}
    closed_by_month         jsonb NOT NULL,       -- {{"YYYY-MM": valid closes}}
    first_action_at         timestamptz,
    last_action_at          timestamptz,
    notes                   bigint NOT NULL,
    notes_open              bigint NOT NULL,
    notes_closed            bigint NOT NULL,
    notes_hidden            bigint NOT NULL,
    users_active            bigint NOT NULL,
    countries_active        bigint NOT NULL,
    anonymous_actions       bigint NOT NULL,
    invalid_transitions     bigint NOT NULL,
    resolutions             bigint NOT NULL,
    mean_resolution_days    numeric(12, 4),
    median_resolution_days  numeric(12, 4),
    top_countries           jsonb NOT NULL,
    top_users               jsonb NOT NULL,
    top_hashtags            jsonb NOT NULL,
    top_applications        jsonb NOT NULL,       -- notes opened per app
    activity_by_hour        bigint[] NOT NULL,
    activity_by_weekday     bigint[] NOT NULL
);
