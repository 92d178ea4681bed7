-- Import step: the target users as entities of the shared steps in _entity/ (every
-- version of a user, SCD2, belongs to the same natural id; the countries they acted in;
-- the notes they opened). Counters come from the datamart state (_entity/25_state.sql),
-- not from facts.
-- A user's peers are countries, international waters (-1) included.
CREATE TEMP TABLE dm_kind ON COMMIT DROP AS
SELECT 'user'::text AS kind, NULL::integer AS no_peer;

CREATE TEMP TABLE dm_entities ON COMMIT DROP AS
SELECT u.user_id AS entity_id, array_agg(u.user_key ORDER BY u.user_key) AS keys
FROM {dwh}.dim_users AS u
JOIN dm_targets AS t ON t.id = u.user_id
GROUP BY u.user_id;

ALTER TABLE dm_entities ADD PRIMARY KEY (entity_id);

-- The other side of the lists: the countries (international waters included), every
-- one listed, under their names. A view: _entity/25_state.sql looks up only the peers
-- it keeps.
CREATE TEMP VIEW dm_peer_source AS
SELECT
    c.country_id AS peer_id,
    true AS listed,
    jsonb_build_object('country_id', c.country_id, 'name', c.name_en) AS peer_top,
    jsonb_build_object('country_id', c.country_id, 'country', c.name_en) AS peer_profile
FROM {dwh}.dim_countries AS c;

-- What the profile calls its lists of countries.
CREATE TEMP TABLE dm_peer_lists ON COMMIT DROP AS
SELECT
    'countries_open_notes'::text AS opening,
    'countries_solving_notes'::text AS solving,
    'ranking_countries'::text AS ranking;

-- The notes the users opened, counted per state and application.
CREATE TEMP TABLE dm_notes ON COMMIT DROP AS
SELECT s.entity_id, s.status, s.application_key, s.n
FROM {dwh}.mart_notes AS s
JOIN dm_entities AS e ON s.kind = 'user' AND s.entity_id = e.entity_id;

ANALYZE dm_entities;
ANALYZE dm_notes;
