-- First build only: drop the secondary indexes of facts and the bridge before the
-- bulk insert; 45_indexes.sql builds them once afterwards (one sort instead of a
-- million random index insertions). The unique (note_id, sequence) index stays: the
-- insert arrives in its order.
DO $first_build$
BEGIN
    IF (SELECT first_run FROM etl_batch) THEN
        DROP INDEX IF EXISTS {dwh}.facts_actor_day_idx;
        DROP INDEX IF EXISTS {dwh}.facts_country_day_idx;
        DROP INDEX IF EXISTS {dwh}.facts_day_idx;
        DROP INDEX IF EXISTS {dwh}.facts_actor_resolution_idx;
        DROP INDEX IF EXISTS {dwh}.facts_country_resolution_idx;
        DROP INDEX IF EXISTS {dwh}.facts_resolution_idx;
        DROP INDEX IF EXISTS {dwh}.fact_hashtags_hashtag_key_idx;
        DROP INDEX IF EXISTS {dwh}.dim_notes_country_key_idx;
        DROP INDEX IF EXISTS {dwh}.dim_notes_opener_user_key_idx;
        DROP INDEX IF EXISTS {dwh}.dim_notes_created_at_idx;
    END IF;
END
$first_build$;
