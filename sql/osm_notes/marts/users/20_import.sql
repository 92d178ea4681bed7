-- Import step: the facts and notes of the target users, in analysed temp tables (the
-- metric queries of 30_refresh.sql then plan with real row counts instead of CTE
-- guesses, and read facts once).

-- Every version of a user (SCD2) belongs to the same natural id: one row per user.
CREATE TEMP TABLE dm_user_versions ON COMMIT DROP AS
SELECT u.user_key, u.user_id
FROM {dwh}.dim_users AS u
JOIN dm_targets AS t ON t.id = u.user_id;

CREATE TEMP TABLE dm_actions ON COMMIT DROP AS
-- An invalid close (closing a closed note) is an action but no close: it is imported as
-- 'invalid_close', so it counts in `actions` and the activity histograms, never in the
-- closes, the rank by closes or the closing lists.
SELECT
    v.user_id, f.fact_id,
    CASE WHEN f.action = 'closed' AND NOT f.is_valid_transition THEN 'invalid_close' ELSE f.action END AS action,
    f.action_at, f.action_date_key, f.action_time_of_week_key,
    f.country_key, f.days_to_resolution, f.note_id
FROM {dwh}.facts AS f
JOIN dm_user_versions AS v ON v.user_key = f.actor_user_key;

CREATE TEMP TABLE dm_opened_notes ON COMMIT DROP AS
SELECT v.user_id, n.status, n.application_key
FROM {dwh}.dim_notes AS n
JOIN dm_user_versions AS v ON v.user_key = n.opener_user_key;

ANALYZE dm_user_versions;
ANALYZE dm_actions;
ANALYZE dm_opened_notes;
