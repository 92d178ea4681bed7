-- Import step: the facts and notes of the target countries, in analysed temp tables
-- (the metric queries of 30_refresh.sql then plan with real row counts and read facts
-- once).
CREATE TEMP TABLE dm_country_rows ON COMMIT DROP AS
SELECT c.country_key, c.country_id, c.name, c.name_en, c.iso_alpha2, c.iso_alpha3
FROM {dwh}.dim_countries AS c
JOIN dm_targets AS t ON t.id = c.country_id;

CREATE TEMP TABLE dm_actions ON COMMIT DROP AS
-- An invalid close (closing a closed note) is an action but no close: it is imported as
-- 'invalid_close', so it counts in `actions` and the activity histograms, never in the
-- closes, the rank by closes or the closing lists.
SELECT
    c.country_id, f.fact_id,
    CASE WHEN f.action = 'closed' AND NOT f.is_valid_transition THEN 'invalid_close' ELSE f.action END AS action,
    f.action_at, f.action_date_key, f.action_time_of_week_key,
    f.actor_user_key, f.days_to_resolution, f.note_id
FROM {dwh}.facts AS f
JOIN dm_country_rows AS c USING (country_key);

CREATE TEMP TABLE dm_notes ON COMMIT DROP AS
SELECT c.country_id, n.status, n.application_key
FROM {dwh}.dim_notes AS n
JOIN dm_country_rows AS c USING (country_key);

ANALYZE dm_country_rows;
ANALYZE dm_actions;
ANALYZE dm_notes;
