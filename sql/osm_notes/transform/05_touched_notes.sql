-- Notes to (re)build: every note with a comment or a note row that reached bronze in
-- the window. A note is always rebuilt from ALL its bronze comments, so a comment
-- back-filled with an old timestamp re-derives its neighbours' positions and states.
-- A row the delete reconciliation marked (`_dwh_deleted_at`) has a new load time too:
-- its note is rebuilt without it.
CREATE TEMP TABLE etl_window_comments ON COMMIT DROP AS
SELECT c.note_id, c.sequence, c.user_id, c._dwh_deleted_at IS NOT NULL AS deleted
FROM {bronze}.note_comments AS c, etl_batch AS b
WHERE c._dwh_loaded_at > b.lower_bound
    AND c._dwh_loaded_at <= b.upper_bound;

CREATE TEMP TABLE etl_touched_notes ON COMMIT DROP AS
SELECT note_id FROM etl_window_comments
UNION
SELECT n.note_id
FROM {bronze}.notes AS n, etl_batch AS b
WHERE n._dwh_loaded_at > b.lower_bound
    AND n._dwh_loaded_at <= b.upper_bound;

ALTER TABLE etl_touched_notes ADD PRIMARY KEY (note_id);
ANALYZE etl_touched_notes;

INSERT INTO etl_stats
SELECT 'comments_in_window', count(*) FROM etl_window_comments
UNION ALL
SELECT 'notes_touched', count(*) FROM etl_touched_notes;
