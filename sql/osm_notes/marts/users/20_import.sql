-- Import step: the target users as entities of the shared steps in _entity/ (every
-- version of a user, SCD2, belongs to the same natural id; the countries they acted in;
-- the notes they opened). Counters come from the datamart state (_entity/25_state.sql),
-- not from facts.
CREATE TEMP TABLE dm_kind ON COMMIT DROP AS
SELECT 'user'::text AS kind;

CREATE TEMP TABLE dm_entities ON COMMIT DROP AS
SELECT u.user_id AS entity_id, array_agg(u.user_key ORDER BY u.user_key) AS keys
FROM {dwh}.dim_users AS u
JOIN dm_targets AS t ON t.id = u.user_id
GROUP BY u.user_id;

ALTER TABLE dm_entities ADD PRIMARY KEY (entity_id);

-- The other side of the lists: the countries (international waters included), and
-- their names once per country: the lists rank by id and name only their entries.
CREATE TEMP TABLE dm_peers ON COMMIT DROP AS
SELECT p.entity_id, p.peer_id, p.action, p.year, p.n
FROM {dwh}.mart_peers AS p
JOIN dm_entities AS e ON p.kind = 'user' AND p.entity_id = e.entity_id;

CREATE TEMP TABLE dm_peer_names ON COMMIT DROP AS
SELECT
    c.country_id AS peer_id,
    jsonb_build_object('country_id', c.country_id, 'name', c.name_en) AS peer_top,
    jsonb_build_object('country_id', c.country_id, 'country', c.name_en) AS peer_profile
FROM {dwh}.dim_countries AS c;

-- What the profile calls its lists of countries.
CREATE TEMP TABLE dm_peer_lists ON COMMIT DROP AS
SELECT
    'countries_open_notes'::text AS opening,
    'countries_solving_notes'::text AS solving,
    'ranking_countries'::text AS ranking;

CREATE TEMP TABLE dm_notes ON COMMIT DROP AS
SELECT e.entity_id, n.status, n.application_key
FROM dm_entities AS e
JOIN {dwh}.dim_notes AS n ON n.opener_user_key = ANY (e.keys);

ANALYZE dm_entities;
ANALYZE dm_peers;
ANALYZE dm_peer_names;
ANALYZE dm_notes;
