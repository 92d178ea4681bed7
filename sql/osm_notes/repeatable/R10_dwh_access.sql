-- The read-only role reads the star schema and the datamarts, like bronze; the marks
-- and the ETL's working state stay private to the owner.
GRANT USAGE ON SCHEMA {dwh} TO {ro};
GRANT SELECT ON ALL TABLES IN SCHEMA {dwh} TO {ro};
REVOKE ALL ON {dwh}.datamart_dirty_users, {dwh}.datamart_dirty_countries FROM {ro};

-- Invalid state transitions found in the source (kept as facts, flagged, never fatal).
CREATE OR REPLACE VIEW {dwh}.v_invalid_transitions AS
SELECT f.note_id, f.sequence, f.action, f.action_at, f.note_status_after, u.user_id
FROM {dwh}.facts AS f
JOIN {dwh}.dim_users AS u ON u.user_key = f.actor_user_key
WHERE NOT f.is_valid_transition;
GRANT SELECT ON {dwh}.v_invalid_transitions TO {ro};
