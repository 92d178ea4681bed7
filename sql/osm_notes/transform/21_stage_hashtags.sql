-- Hashtags of the comments of the notes being built: '#' at the start or after
-- white space, then letters, digits or '_' in any script (ICU classes: the database
-- collation may be C), lower-cased; one row per distinct hashtag of a comment,
-- numbered in order of first appearance.
CREATE TEMP TABLE etl_hashtags ON COMMIT DROP AS
WITH
comments AS (
    SELECT c.note_id, c.sequence, c.body
    FROM {bronze}.note_comments AS c
    JOIN etl_notes USING (note_id)
    WHERE c.body LIKE '%#%'
        AND c._dwh_deleted_at IS NULL
),

matches AS (
    SELECT
        c.note_id,
        c.sequence,
        lower(m.match[2] COLLATE "und-x-icu") AS hashtag,
        m.ordinality AS found_at
    FROM comments AS c
    CROSS JOIN LATERAL regexp_matches(
        c.body COLLATE "und-x-icu", '(^|[[:space:]])#([[:alnum:]_]+)', 'g'
    ) WITH ORDINALITY AS m (match, ordinality)
),

distinct_tags AS (
    SELECT note_id, sequence, hashtag, min(found_at) AS found_at
    FROM matches
    GROUP BY note_id, sequence, hashtag
)

SELECT
    note_id,
    sequence,
    hashtag,
    row_number() OVER (PARTITION BY note_id, sequence ORDER BY found_at)::smallint AS position
FROM distinct_tags;

INSERT INTO {dwh}.dim_hashtags (hashtag)
SELECT DISTINCT hashtag
FROM etl_hashtags
ORDER BY hashtag
ON CONFLICT (hashtag) DO NOTHING;
