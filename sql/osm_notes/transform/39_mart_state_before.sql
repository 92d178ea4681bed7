-- The datamart state (migrations/0500_mart_state.sql) before the facts are written:
-- the facts of every note this run rebuilds, as the state counted them. 43_mart_state.sql
-- subtracts these and adds the same notes' facts after the write, so a fact that did not
-- change cancels out and one that moved, changed or went away moves its counts.
--
-- A first build or rebuild (facts emptied), and the first run after the state was
-- added to a warehouse that already had facts, fill the state from all facts instead.
CREATE TEMP TABLE etl_mart_mode ON COMMIT DROP AS
SELECT b.first_run OR NOT s.built AS full_state
FROM etl_batch AS b, {dwh}.mart_state_built AS s;

-- One row per fact, in the datamarts' terms: natural user and country ids, and an
-- invalid close as its own action.
CREATE TEMP VIEW etl_mart_facts AS
SELECT
    f.fact_id,
    f.note_id,
    CASE WHEN f.action = 'closed' AND NOT f.is_valid_transition THEN 'invalid_close' ELSE f.action END AS action,
    f.action_date_key AS date_key,
    f.action_time_of_week_key AS time_of_week_key,
    u.user_id,
    c.country_id,
    f.days_to_resolution AS days,
    NOT f.is_valid_transition AS invalid
FROM {dwh}.facts AS f
JOIN etl_touched_notes AS t USING (note_id)
JOIN {dwh}.dim_users AS u ON u.user_key = f.actor_user_key
JOIN {dwh}.dim_countries AS c ON c.country_key = f.country_key;

CREATE TEMP TABLE etl_mart_before ON COMMIT DROP AS
SELECT m.*
FROM etl_mart_facts AS m
WHERE NOT (SELECT full_state FROM etl_mart_mode);

-- Their hashtags now: 40_write_facts.sql deletes those of dropped facts.
CREATE TEMP TABLE etl_mart_before_hashtags ON COMMIT DROP AS
SELECT b.fact_id, b.hashtag_key
FROM {dwh}.fact_hashtags AS b
JOIN etl_mart_before AS m USING (fact_id);

-- The same notes' dim_notes rows (41_dim_notes.sql rewrites them), as mart_notes counts
-- them: the opener's and the country's natural ids.
CREATE TEMP VIEW etl_mart_notes AS
SELECT n.note_id, u.user_id, c.country_id, n.status, n.application_key
FROM {dwh}.dim_notes AS n
JOIN etl_touched_notes AS t USING (note_id)
JOIN {dwh}.dim_users AS u ON u.user_key = n.opener_user_key
JOIN {dwh}.dim_countries AS c ON c.country_key = n.country_key;

CREATE TEMP TABLE etl_mart_before_notes ON COMMIT DROP AS
SELECT m.*
FROM etl_mart_notes AS m
WHERE NOT (SELECT full_state FROM etl_mart_mode);
