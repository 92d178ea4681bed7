-- Users, SCD type 2 on the username. A uid first seen in a comment, before the users
-- table names it, gets a nameless version that later learns its name in place (it
-- was never reported under another one).
CREATE TEMP TABLE etl_users_changed ON COMMIT DROP AS
WITH
source AS (
    SELECT user_id, username, _dwh_loaded_at AS observed_at
    FROM {bronze}.users
),

current_versions AS (
    SELECT user_key, user_id, username, valid_from
    FROM {dwh}.dim_users
    WHERE is_current
)

SELECT
    s.user_id,
    s.username,
    s.observed_at,
    c.user_key,
    c.username AS old_username,
    c.valid_from
FROM source AS s
LEFT JOIN current_versions AS c USING (user_id)
WHERE c.user_key IS NULL
    OR c.username IS DISTINCT FROM s.username;

INSERT INTO {dwh}.dim_users (user_id, username, valid_from)
SELECT user_id, username, '-infinity'
FROM etl_users_changed
WHERE user_key IS NULL;

-- Named for the first time, or renamed at a moment not after the version's start:
-- corrected in place.
UPDATE {dwh}.dim_users AS d
SET username = c.username
FROM etl_users_changed AS c
WHERE d.user_key = c.user_key
    AND (c.old_username IS NULL OR c.observed_at <= c.valid_from);

-- Renamed: close the current version when the new name was seen, open the next.
WITH closed AS (
    UPDATE {dwh}.dim_users AS d
    SET valid_to = c.observed_at
    FROM etl_users_changed AS c
    WHERE d.user_key = c.user_key
        AND c.old_username IS NOT NULL
        AND c.observed_at > c.valid_from
    RETURNING c.user_id, c.username, c.observed_at
)
INSERT INTO {dwh}.dim_users (user_id, username, valid_from)
SELECT user_id, username, observed_at
FROM closed;

-- A renamed user's name shows in their datamart row and in the top-users list of every
-- country they acted in: refresh those.
INSERT INTO {dwh}.datamart_dirty_users (user_id)
SELECT user_id
FROM etl_users_changed
WHERE user_key IS NOT NULL
ON CONFLICT (user_id) DO UPDATE SET mark = excluded.mark;

INSERT INTO {dwh}.datamart_dirty_countries (country_id)
SELECT DISTINCT d.country_id
FROM etl_users_changed AS c
JOIN {dwh}.dim_users AS v ON v.user_id = c.user_id
JOIN {dwh}.facts AS f ON f.actor_user_key = v.user_key
JOIN {dwh}.dim_countries AS d USING (country_key)
WHERE c.user_key IS NOT NULL
ON CONFLICT (country_id) DO UPDATE SET mark = excluded.mark;

-- Actors of the window's comments that no users row names yet (earlier comments got
-- theirs when they arrived).
INSERT INTO {dwh}.dim_users (user_id, username, valid_from)
SELECT c.user_id, NULL::text, '-infinity'::timestamptz
FROM (SELECT DISTINCT user_id FROM etl_window_comments WHERE user_id IS NOT NULL) AS c
WHERE NOT EXISTS (SELECT FROM {dwh}.dim_users AS d WHERE d.user_id = c.user_id);

INSERT INTO etl_stats
SELECT 'users_changed', count(*) FROM etl_users_changed;

-- First build: planner statistics for what was just loaded or filled (autovacuum has
-- not seen it yet, and a one-row estimate of dim_users turns the SCD2 lookup of a
-- million actions into a nested loop).
DO $first_build$
BEGIN
    IF (SELECT first_run FROM etl_batch) THEN
        ANALYZE {bronze}.notes;
        ANALYZE {bronze}.note_comments;
        ANALYZE {dwh}.dim_users;
        ANALYZE {dwh}.dim_countries;
        ANALYZE {dwh}.country_areas;
    END IF;
END
$first_build$;
