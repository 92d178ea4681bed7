-- The secondary indexes 35_first_build_indexes_off.sql dropped, as declared in
-- migrations/0200_star_schema.sql and 0500_mart_state.sql (a no-op on incremental
-- runs), and statistics for what a first build filled.
CREATE INDEX IF NOT EXISTS facts_actor_day_idx ON {dwh}.facts (actor_user_key, action_date_key);
CREATE INDEX IF NOT EXISTS facts_country_day_idx ON {dwh}.facts (country_key, action_date_key);
CREATE INDEX IF NOT EXISTS facts_day_idx ON {dwh}.facts (action_date_key) INCLUDE (days_to_resolution);
CREATE INDEX IF NOT EXISTS facts_actor_resolution_idx ON {dwh}.facts (actor_user_key, days_to_resolution)
WHERE days_to_resolution IS NOT NULL;
CREATE INDEX IF NOT EXISTS facts_country_resolution_idx ON {dwh}.facts (country_key, days_to_resolution)
WHERE days_to_resolution IS NOT NULL;
CREATE INDEX IF NOT EXISTS facts_resolution_idx ON {dwh}.facts (days_to_resolution)
WHERE days_to_resolution IS NOT NULL;
CREATE INDEX IF NOT EXISTS fact_hashtags_hashtag_key_idx ON {dwh}.fact_hashtags (hashtag_key);
CREATE INDEX IF NOT EXISTS dim_notes_country_key_idx ON {dwh}.dim_notes (country_key);
CREATE INDEX IF NOT EXISTS dim_notes_opener_user_key_idx ON {dwh}.dim_notes (opener_user_key);
CREATE INDEX IF NOT EXISTS dim_notes_created_at_idx ON {dwh}.dim_notes (created_at) INCLUDE (status);
-- dropped by 43_mart_state.sql while it fills the whole state
CREATE INDEX IF NOT EXISTS mart_peers_top_idx ON {dwh}.mart_peers (kind, entity_id, action, year, n DESC, peer_id);

DO $first_build$
BEGIN
    IF (SELECT first_run FROM etl_batch) THEN
        ANALYZE {dwh}.facts;
        ANALYZE {dwh}.fact_hashtags;
        ANALYZE {dwh}.dim_notes;
        ANALYZE {dwh}.dim_hashtags;
        ANALYZE {dwh}.dim_dates;
    END IF;
END
$first_build$;
