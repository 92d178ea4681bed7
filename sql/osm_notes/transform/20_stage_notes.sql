-- Note-level attributes of the touched notes that have a note row and at least one
-- comment in bronze. Comments whose note row has not arrived yet wait: the note row's
-- arrival touches the note again and builds all of them.
CREATE TEMP TABLE etl_notes ON COMMIT DROP AS
WITH
notes AS (
    SELECT n.note_id, n.geom, n.created_at, n.status AS source_status
    FROM {bronze}.notes AS n
    JOIN etl_touched_notes USING (note_id)
    WHERE n._dwh_deleted_at IS NULL  -- deleted in the source: no longer built
),

built AS (
    SELECT d.note_id, d.country_key
    FROM {dwh}.dim_notes AS d
    JOIN etl_touched_notes USING (note_id)
),

first_comments AS (
    SELECT DISTINCT ON (c.note_id) c.note_id, c.action, lower(c.body) AS body
    FROM {bronze}.note_comments AS c
    JOIN etl_touched_notes USING (note_id)
    WHERE c._dwh_deleted_at IS NULL
    ORDER BY c.note_id, c.sequence
),

-- Lower case on both sides: LIKE on pre-lowered text is much cheaper than ILIKE.
applications AS (
    SELECT application_key, lower(pattern) AS pattern, priority
    FROM {dwh}.dim_applications
    WHERE pattern IS NOT NULL
),

-- Point in polygon once per note: only notes not built before are placed (dim_notes
-- keeps the answer until a border moves: 10_dim_countries.sql places those again).
-- Overlapping boundaries: the smallest country id wins.
placed AS (
    SELECT DISTINCT ON (n.note_id) n.note_id, a.country_key
    FROM notes AS n
    JOIN {dwh}.country_areas AS a ON ST_Intersects(a.geom, n.geom)
    WHERE NOT EXISTS (SELECT FROM {dwh}.dim_notes AS d WHERE d.note_id = n.note_id)
    ORDER BY n.note_id, a.country_id
),

-- The app that signed the opening comment: first matching pattern by priority
-- (case-insensitive).
recognised AS (
    SELECT DISTINCT ON (f.note_id) f.note_id, a.application_key
    FROM first_comments AS f
    JOIN applications AS a ON f.body LIKE a.pattern
    WHERE f.action = 'opened'
    ORDER BY f.note_id, a.priority
)

SELECT
    n.note_id,
    n.created_at,
    n.source_status,
    -- placed again after a border moved (10_dim_countries.sql), else where it was
    -- built, else placed now; in no country's polygon: international waters (member -1)
    coalesce(m.country_key, b.country_key, p.country_key, -1) AS country_key,
    coalesce(r.application_key, 0)::smallint AS application_key
FROM notes AS n
JOIN (SELECT note_id FROM first_comments) AS f USING (note_id)
LEFT JOIN built AS b USING (note_id)
LEFT JOIN placed AS p USING (note_id)
LEFT JOIN etl_replaced_notes AS m USING (note_id)
LEFT JOIN recognised AS r USING (note_id);

ALTER TABLE etl_notes ADD PRIMARY KEY (note_id);
ANALYZE etl_notes;

INSERT INTO etl_stats
SELECT 'comments_waiting', count(*)
FROM etl_window_comments AS w
WHERE NOT w.deleted
    AND NOT EXISTS (SELECT FROM etl_notes AS n WHERE n.note_id = w.note_id)
    AND NOT EXISTS (
        SELECT FROM {bronze}.notes AS d WHERE d.note_id = w.note_id AND d._dwh_deleted_at IS NOT NULL
    );
