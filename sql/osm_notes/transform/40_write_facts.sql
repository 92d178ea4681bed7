-- Write the staged facts: update the rows whose measures changed (a back-filled action
-- shifted positions and states, a rename re-keyed an actor), insert the new
-- ones. `etl_written` keeps, per written fact, the keys before and after, for the
-- datamart marks and the run's statistics.
CREATE TEMP TABLE etl_written (
    fact_id               bigint NOT NULL,
    note_id               integer NOT NULL,
    sequence              integer NOT NULL,
    inserted              boolean NOT NULL,
    old_actor_user_key    integer,
    old_country_key       integer,
    actor_user_key        integer NOT NULL,
    country_key           integer NOT NULL,
    valid_before          boolean,
    is_valid_transition   boolean NOT NULL,
    deleted               boolean NOT NULL DEFAULT false
) ON COMMIT DROP;

WITH
existing AS (
    SELECT f.fact_id, f.actor_user_key, f.country_key, f.is_valid_transition
    FROM {dwh}.facts AS f
    JOIN etl_notes USING (note_id)
),

updated AS (
    UPDATE {dwh}.facts AS f
    SET
        action = s.action,
        action_at = s.action_at,
        action_date_key = s.action_date_key,
        action_time_of_week_key = s.action_time_of_week_key,
        actor_user_key = s.actor_user_key,
        opener_user_key = s.opener_user_key,
        country_key = s.country_key,
        application_key = s.application_key,
        opened_date_key = s.opened_date_key,
        action_position = s.action_position,
        days_open = s.days_open,
        days_to_resolution = s.days_to_resolution,
        is_opener = s.is_opener,
        is_valid_transition = s.is_valid_transition,
        note_status_after = s.note_status_after,
        hashtag_count = s.hashtag_count
    FROM etl_facts AS s
    WHERE f.note_id = s.note_id
        AND f.sequence = s.sequence
        AND (
            f.action, f.action_at, f.action_date_key, f.action_time_of_week_key, f.actor_user_key,
            f.opener_user_key, f.country_key, f.application_key, f.opened_date_key, f.action_position,
            f.days_open, f.days_to_resolution, f.is_opener, f.is_valid_transition, f.note_status_after,
            f.hashtag_count
        ) IS DISTINCT FROM (
            s.action, s.action_at, s.action_date_key, s.action_time_of_week_key, s.actor_user_key,
            s.opener_user_key, s.country_key, s.application_key, s.opened_date_key, s.action_position,
            s.days_open, s.days_to_resolution, s.is_opener, s.is_valid_transition, s.note_status_after,
            s.hashtag_count
        )
    RETURNING f.fact_id, f.note_id, f.sequence, f.actor_user_key, f.country_key, f.is_valid_transition
)

INSERT INTO etl_written
SELECT
    u.fact_id, u.note_id, u.sequence, false,
    e.actor_user_key, e.country_key, u.actor_user_key, u.country_key,
    e.is_valid_transition, u.is_valid_transition
FROM updated AS u
JOIN existing AS e USING (fact_id);

WITH inserted AS (
    INSERT INTO {dwh}.facts (
        note_id, sequence, action, action_at, action_date_key, action_time_of_week_key,
        actor_user_key, opener_user_key, country_key, application_key, opened_date_key,
        action_position, days_open, days_to_resolution, is_opener, is_valid_transition,
        note_status_after, hashtag_count
    )
    SELECT
        s.note_id, s.sequence, s.action, s.action_at, s.action_date_key, s.action_time_of_week_key,
        s.actor_user_key, s.opener_user_key, s.country_key, s.application_key, s.opened_date_key,
        s.action_position, s.days_open, s.days_to_resolution, s.is_opener, s.is_valid_transition,
        s.note_status_after, s.hashtag_count
    FROM etl_facts AS s
    WHERE NOT EXISTS (
        SELECT FROM {dwh}.facts AS f WHERE f.note_id = s.note_id AND f.sequence = s.sequence
    )
    ORDER BY s.note_id, s.sequence
    RETURNING fact_id, note_id, sequence, actor_user_key, country_key, is_valid_transition
)

INSERT INTO etl_written
SELECT
    fact_id, note_id, sequence, true,
    NULL, NULL, actor_user_key, country_key,
    NULL, is_valid_transition
FROM inserted;

-- Hashtags of the inserted facts (comment bodies never change in bronze).
INSERT INTO {dwh}.fact_hashtags (fact_id, hashtag_key, position)
SELECT w.fact_id, d.hashtag_key, h.position
FROM etl_written AS w
JOIN etl_hashtags AS h USING (note_id, sequence)
JOIN {dwh}.dim_hashtags AS d USING (hashtag)
WHERE w.inserted;

-- Facts of the notes being built that are no longer staged: their comment or their
-- note was deleted in the source (bronze marks it, `_dwh_deleted_at`). Dropped with
-- their hashtags; etl_written keeps their keys, so their users and countries are
-- marked for the datamarts.
WITH
dropped AS (
    DELETE FROM {dwh}.facts AS f
    USING etl_touched_notes AS t
    WHERE f.note_id = t.note_id
        AND NOT (SELECT first_run FROM etl_batch)  -- a first build stages every fact it writes
        AND NOT EXISTS (SELECT FROM etl_facts AS s WHERE s.note_id = f.note_id AND s.sequence = f.sequence)
    RETURNING f.fact_id, f.note_id, f.sequence, f.actor_user_key, f.country_key, f.is_valid_transition
),

dropped_hashtags AS (
    DELETE FROM {dwh}.fact_hashtags AS b
    USING dropped AS d
    WHERE b.fact_id = d.fact_id
)

INSERT INTO etl_written
SELECT
    fact_id, note_id, sequence, false,
    actor_user_key, country_key, actor_user_key, country_key,
    is_valid_transition, is_valid_transition, true
FROM dropped;

INSERT INTO etl_stats
SELECT s.name, s.value
FROM (
    SELECT
        count(*) FILTER (WHERE inserted) AS inserted,
        count(*) FILTER (WHERE NOT inserted AND NOT deleted) AS updated,
        count(*) FILTER (WHERE deleted) AS deleted,
        -- newly found: new invalid facts, and facts a late action made invalid
        count(*) FILTER (WHERE NOT is_valid_transition AND valid_before IS DISTINCT FROM false) AS invalid
    FROM etl_written
) AS w
CROSS JOIN LATERAL (
    VALUES
        ('facts_inserted', w.inserted), ('facts_updated', w.updated), ('facts_deleted', w.deleted),
        ('invalid_transitions', w.invalid)
) AS s (name, value);
