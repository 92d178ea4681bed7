-- Import step: the target countries as entities of the shared steps in _entity/ (their
-- fact keys, the users they count, the notes placed in them). Counters come from the
-- datamart state (_entity/25_state.sql), not from facts.
-- A country's peers are users; anonymous (-1) is not one of them.
CREATE TEMP TABLE dm_kind ON COMMIT DROP AS
SELECT 'country'::text AS kind, -1 AS no_peer;

CREATE TEMP TABLE dm_country_rows ON COMMIT DROP AS
SELECT c.country_key, c.country_id, c.name, c.name_en, c.iso_alpha2, c.iso_alpha3
FROM {dwh}.dim_countries AS c
JOIN dm_targets AS t ON t.id = c.country_id;

CREATE TEMP TABLE dm_entities ON COMMIT DROP AS
SELECT country_id AS entity_id, ARRAY[country_key] AS keys
FROM dm_country_rows;

ALTER TABLE dm_entities ADD PRIMARY KEY (entity_id);

-- The other side of the lists: a country's actors (anonymous, -1, is no user) under
-- their current names; `listed`: the profile's lists name their entries, so only users
-- with a name. A view: _entity/25_state.sql looks up only the peers it keeps.
CREATE TEMP VIEW dm_peer_source AS
SELECT
    u.user_id AS peer_id,
    u.username IS NOT NULL AS listed,
    jsonb_build_object('user_id', u.user_id, 'username', u.username) AS peer_top,
    CASE WHEN u.username IS NOT NULL THEN jsonb_build_object('user_id', u.user_id, 'username', u.username) END
        AS peer_profile
FROM {dwh}.dim_users AS u
WHERE u.is_current AND u.user_id <> -1;

CREATE TEMP TABLE dm_peer_lists ON COMMIT DROP AS
SELECT 'users_open_notes'::text AS opening, 'users_solving_notes'::text AS solving, 'ranking_users'::text AS ranking;

-- The notes placed in the countries, counted per state and application.
CREATE TEMP TABLE dm_notes ON COMMIT DROP AS
SELECT s.entity_id, s.status, s.application_key, s.n
FROM {dwh}.mart_notes AS s
JOIN dm_entities AS e ON s.kind = 'country' AND s.entity_id = e.entity_id;

ANALYZE dm_country_rows;
ANALYZE dm_entities;
ANALYZE dm_notes;
