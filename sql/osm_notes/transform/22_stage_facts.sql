-- Facts of the notes being built, from all their bronze comments.
--
-- State machine (as the Ingestion's trigger: an invalid transition is stored but
-- changes nothing): opened is valid only as the first action; closed needs an open
-- note; reopened a closed or hidden one; hidden anything not hidden; commented is
-- always valid. Closed form, no per-row loop: after any hidden (not followed by a
-- reopen) the note is hidden; otherwise it is closed iff a close came after the last
-- reopen. So the state before an action follows from the latest hidden/reopen and the
-- latest close before it, two running maxima over the note's sequence.
CREATE TEMP TABLE etl_facts ON COMMIT DROP AS
WITH
comments AS (
    SELECT
        c.note_id,
        c.sequence,
        c.action,
        c.user_id,
        c.created_at AS action_at,
        n.created_at AS note_created_at,
        n.country_key,
        n.application_key
    FROM {bronze}.note_comments AS c
    JOIN etl_notes AS n USING (note_id)
    WHERE c._dwh_deleted_at IS NULL  -- deleted in the source: no fact
),

user_versions AS (
    SELECT user_key, user_id, valid_from, valid_to
    FROM {dwh}.dim_users
),

hashtag_counts AS (
    SELECT note_id, sequence, count(*) AS hashtag_count
    FROM etl_hashtags
    GROUP BY note_id, sequence
),

-- The actor's version valid at the action; anonymous is member -1.
with_actor AS (
    SELECT
        c.*,
        coalesce(u.user_key, -1) AS actor_user_key
    FROM comments AS c
    LEFT JOIN user_versions AS u
        ON u.user_id = c.user_id
        AND c.action_at >= u.valid_from
        AND c.action_at < u.valid_to
),

-- One pass, every function over the actions before the current one (the first
-- action has none: it is its own opener).
ordered AS (
    SELECT
        a.*,
        row_number() OVER earlier AS action_position,
        coalesce(first_value(a.actor_user_key) OVER earlier, a.actor_user_key) AS opener_user_key,
        CASE
            WHEN row_number() OVER earlier = 1 THEN a.user_id
            ELSE first_value(a.user_id) OVER earlier
        END AS opener_user_id,
        -- 2 * sequence (+ 1 when hidden): the latest of the two kinds, and which one
        max(CASE WHEN a.action IN ('hidden', 'reopened') THEN 2 * a.sequence + (a.action = 'hidden')::integer END)
            OVER earlier AS last_hide_or_reopen,
        max(CASE WHEN a.action = 'closed' THEN a.sequence END) OVER earlier AS last_close
    FROM with_actor AS a
    WINDOW earlier AS (PARTITION BY a.note_id ORDER BY a.sequence ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),

with_state AS (
    SELECT
        o.*,
        CASE
            WHEN mod(o.last_hide_or_reopen, 2) = 1 THEN 'hidden'
            WHEN coalesce(o.last_close, 0) > coalesce(o.last_hide_or_reopen / 2, 0) THEN 'closed'
            ELSE 'open'
        END AS status_before
    FROM ordered AS o
),

validated AS (
    SELECT
        s.*,
        CASE s.action
            WHEN 'opened' THEN s.action_position = 1
            WHEN 'commented' THEN true
            WHEN 'closed' THEN s.status_before = 'open'
            WHEN 'reopened' THEN s.status_before <> 'open'
            WHEN 'hidden' THEN s.status_before <> 'hidden'
        END AS is_valid_transition
    FROM with_state AS s
),

-- A valid close resolves the open period that began at the last valid reopen (or at
-- the note's creation); the second and last pass over the note's history.
reopened AS (
    SELECT
        v.*,
        max(CASE WHEN v.action = 'reopened' AND v.is_valid_transition THEN v.action_at END)
            OVER (PARTITION BY v.note_id ORDER BY v.sequence ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
            AS reopened_at
    FROM validated AS v
)

SELECT
    r.note_id,
    r.sequence,
    r.action,
    r.action_at,
    to_char(r.action_at AT TIME ZONE 'UTC', 'YYYYMMDD')::integer AS action_date_key,
    (date_part('isodow', r.action_at AT TIME ZONE 'UTC') * 100
        + date_part('hour', r.action_at AT TIME ZONE 'UTC'))::smallint AS action_time_of_week_key,
    r.actor_user_key,
    r.opener_user_key,
    r.country_key,
    r.application_key,
    to_char(r.note_created_at AT TIME ZONE 'UTC', 'YYYYMMDD')::integer AS opened_date_key,
    r.action_position::integer AS action_position,
    round(extract(epoch FROM r.action_at - r.note_created_at) / 86400, 4) AS days_open,
    CASE
        WHEN r.action = 'closed' AND r.is_valid_transition
            THEN round(extract(epoch FROM r.action_at - coalesce(r.reopened_at, r.note_created_at)) / 86400, 4)
    END AS days_to_resolution,
    coalesce(r.user_id = r.opener_user_id, false) AS is_opener,
    r.is_valid_transition,
    CASE
        WHEN NOT r.is_valid_transition OR r.action = 'commented' THEN r.status_before
        WHEN r.action IN ('opened', 'reopened') THEN 'open'
        ELSE r.action
    END AS note_status_after,
    coalesce(h.hashtag_count, 0)::smallint AS hashtag_count,
    r.status_before
FROM reopened AS r
LEFT JOIN hashtag_counts AS h USING (note_id, sequence);

ALTER TABLE etl_facts ADD PRIMARY KEY (note_id, sequence);
ANALYZE etl_facts;
