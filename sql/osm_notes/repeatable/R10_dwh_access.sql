-- The read-only role reads the star schema and the datamarts, like bronze; the marks
-- and the ETL's working state stay private to the owner.
GRANT USAGE ON SCHEMA {dwh} TO {ro};
GRANT SELECT ON ALL TABLES IN SCHEMA {dwh} TO {ro};
REVOKE ALL ON {dwh}.datamart_dirty_users, {dwh}.datamart_dirty_countries FROM {ro};

-- Each user's ranks (ties share one), from the levels marts/users/40_rank.sql keeps
-- (migrations/0520_user_ranks.sql; NULL until the first refresh after it).
CREATE OR REPLACE VIEW {dwh}.datamart_user_ranks AS
SELECT d.user_id, a.rank AS rank_by_actions, c.rank AS rank_by_closed
FROM {dwh}.datamart_users AS d
LEFT JOIN {dwh}.datamart_user_rank_levels AS a ON a.measure = 'actions' AND a.value = d.actions
LEFT JOIN {dwh}.datamart_user_rank_levels AS c ON c.measure = 'closed' AND c.value = d.closed;
GRANT SELECT ON {dwh}.datamart_user_ranks TO {ro};

-- Invalid state transitions found in the source (kept as facts, flagged, never fatal).
CREATE OR REPLACE VIEW {dwh}.v_invalid_transitions AS
SELECT f.note_id, f.sequence, f.action, f.action_at, f.note_status_after, u.user_id
FROM {dwh}.facts AS f
JOIN {dwh}.dim_users AS u ON u.user_key = f.actor_user_key
WHERE NOT f.is_valid_transition;
GRANT SELECT ON {dwh}.v_invalid_transitions TO {ro};
