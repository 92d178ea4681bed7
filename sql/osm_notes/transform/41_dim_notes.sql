-- One row per built note: its place, opener, app and state after its last action.
CREATE TEMP TABLE etl_note_rows ON COMMIT DROP AS
WITH
last_actions AS (
    SELECT DISTINCT ON (note_id)
        note_id,
        action_position AS actions,
        action_at AS last_action_at,
        note_status_after AS status,
        opener_user_key
    FROM etl_facts
    ORDER BY note_id, sequence DESC
),

last_valid_closes AS (
    SELECT note_id, max(action_at) AS closed_at
    FROM etl_facts
    WHERE action = 'closed' AND is_valid_transition
    GROUP BY note_id
)

SELECT
    n.note_id,
    n.country_key,
    l.opener_user_key,
    n.application_key,
    n.created_at,
    l.status,
    CASE WHEN l.status = 'closed' THEN c.closed_at END AS closed_at,
    l.actions::integer AS actions,
    l.last_action_at
FROM etl_notes AS n
JOIN last_actions AS l USING (note_id)
LEFT JOIN last_valid_closes AS c USING (note_id);

UPDATE {dwh}.dim_notes AS d
SET
    country_key = r.country_key,
    opener_user_key = r.opener_user_key,
    application_key = r.application_key,
    created_at = r.created_at,
    status = r.status,
    closed_at = r.closed_at,
    actions = r.actions,
    last_action_at = r.last_action_at
FROM etl_note_rows AS r
WHERE d.note_id = r.note_id
    AND (
        d.country_key, d.opener_user_key, d.application_key, d.created_at, d.status, d.closed_at,
        d.actions, d.last_action_at
    ) IS DISTINCT FROM (
        r.country_key, r.opener_user_key, r.application_key, r.created_at, r.status, r.closed_at,
        r.actions, r.last_action_at
    );

-- A note deleted in the source, or all of whose comments were: no longer a note.
DELETE FROM {dwh}.dim_notes AS d
USING etl_touched_notes AS t
WHERE d.note_id = t.note_id
    AND NOT EXISTS (SELECT FROM etl_note_rows AS r WHERE r.note_id = d.note_id);

INSERT INTO {dwh}.dim_notes (
    note_id, country_key, opener_user_key, application_key, created_at, status, closed_at,
    actions, last_action_at
)
SELECT
    r.note_id, r.country_key, r.opener_user_key, r.application_key, r.created_at, r.status,
    r.closed_at, r.actions, r.last_action_at
FROM etl_note_rows AS r
WHERE NOT EXISTS (SELECT FROM {dwh}.dim_notes AS d WHERE d.note_id = r.note_id)
ORDER BY r.note_id;

-- The source's own status should agree with the one derived from the actions; a
-- disagreement is reported (the note row may simply lag its comments), never fatal.
INSERT INTO etl_stats
SELECT 'status_mismatches', count(*)
FROM etl_notes AS n
JOIN etl_note_rows AS r USING (note_id)
WHERE r.status <> n.source_status;
