-- Mark for the datamart refresh every user and country whose facts changed: actors
-- and countries of written facts, before and after, and the openers of their notes
-- (whose "opened and still open" count follows the note's state).
WITH
written_keys AS (
    SELECT actor_user_key AS user_key FROM etl_written GROUP BY actor_user_key
    UNION
    SELECT old_actor_user_key FROM etl_written WHERE old_actor_user_key IS NOT NULL GROUP BY 1
    UNION
    SELECT r.opener_user_key
    FROM etl_note_rows AS r
    WHERE r.note_id IN (SELECT note_id FROM etl_written)
    GROUP BY 1
)

INSERT INTO {dwh}.datamart_dirty_users (user_id)
SELECT DISTINCT u.user_id
FROM written_keys AS k
JOIN {dwh}.dim_users AS u USING (user_key)
WHERE u.user_id <> -1
ON CONFLICT (user_id) DO UPDATE SET mark = excluded.mark;

WITH
written_keys AS (
    SELECT country_key FROM etl_written GROUP BY country_key
    UNION
    SELECT old_country_key FROM etl_written WHERE old_country_key IS NOT NULL GROUP BY 1
)

INSERT INTO {dwh}.datamart_dirty_countries (country_id)
SELECT d.country_id
FROM written_keys AS k
JOIN {dwh}.dim_countries AS d USING (country_key)
ON CONFLICT (country_id) DO UPDATE SET mark = excluded.mark;
