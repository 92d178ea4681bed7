-- Countries, type 1: new ones are added, changed ones (source updated_at moved) get
-- their names corrected and their boundary subdivided again, removed ones (no longer in
-- bronze) lose their areas. Built notes inside the old or new areas of those countries
-- are placed again (etl_replaced_notes, read by 20_stage_notes.sql) and rebuilt, so
-- their facts and datamarts follow, as a rebuild would place them.
CREATE TEMP TABLE etl_countries_changed ON COMMIT DROP AS
WITH
source AS (
    SELECT country_id, name, name_en, iso_alpha2, iso_alpha3, geom, updated_at
    FROM {bronze}.countries
),

known AS (
    SELECT country_key, country_id, name, name_en, iso_alpha2, iso_alpha3, source_updated_at
    FROM {dwh}.dim_countries
)

SELECT
    s.*,
    k.country_key IS NULL AS is_new,
    k.country_key IS NOT NULL
        AND (s.name, s.name_en, s.iso_alpha2, s.iso_alpha3)
        IS DISTINCT FROM (k.name, k.name_en, k.iso_alpha2, k.iso_alpha3) AS renamed
FROM source AS s
LEFT JOIN known AS k USING (country_id)
WHERE k.country_key IS NULL
    OR k.source_updated_at IS DISTINCT FROM s.updated_at;

INSERT INTO {dwh}.dim_countries (country_id, name, name_en, iso_alpha2, iso_alpha3, source_updated_at)
SELECT country_id, name, name_en, iso_alpha2, iso_alpha3, updated_at
FROM etl_countries_changed
WHERE is_new;

UPDATE {dwh}.dim_countries AS d
SET
    name = c.name,
    name_en = c.name_en,
    iso_alpha2 = c.iso_alpha2,
    iso_alpha3 = c.iso_alpha3,
    source_updated_at = c.updated_at
FROM etl_countries_changed AS c
WHERE d.country_id = c.country_id
    AND NOT c.is_new;

-- Countries gone from the source keep their dimension row (facts may name them until
-- their notes are placed again below), not their areas.
CREATE TEMP TABLE etl_countries_removed ON COMMIT DROP AS
SELECT d.country_key, d.country_id
FROM {dwh}.dim_countries AS d
WHERE d.country_id <> -1
    AND NOT EXISTS (SELECT FROM {bronze}.countries AS s WHERE s.country_id = d.country_id)
    AND EXISTS (SELECT FROM {dwh}.country_areas AS a WHERE a.country_key = d.country_key);

-- Where places may move: the old areas of changed and removed countries, then (below)
-- the new areas of changed and new ones.
CREATE TEMP TABLE etl_moved_areas ON COMMIT DROP AS
SELECT a.geom
FROM {dwh}.country_areas AS a
WHERE a.country_key IN (
    SELECT d.country_key FROM etl_countries_changed AS c JOIN {dwh}.dim_countries AS d USING (country_id)
    UNION ALL
    SELECT country_key FROM etl_countries_removed
);

DELETE FROM {dwh}.country_areas AS a
USING etl_countries_changed AS c
JOIN {dwh}.dim_countries AS d USING (country_id)
WHERE a.country_key = d.country_key;

DELETE FROM {dwh}.country_areas AS a
USING etl_countries_removed AS r
WHERE a.country_key = r.country_key;

INSERT INTO {dwh}.country_areas (country_key, country_id, geom)
SELECT
    d.country_key,
    d.country_id,
    ST_Subdivide(CASE WHEN ST_IsValid(c.geom) THEN c.geom ELSE ST_MakeValid(c.geom) END, 128)
FROM etl_countries_changed AS c
JOIN {dwh}.dim_countries AS d USING (country_id);

INSERT INTO etl_moved_areas
SELECT a.geom
FROM {dwh}.country_areas AS a
JOIN {dwh}.dim_countries AS d USING (country_key)
JOIN etl_countries_changed AS c ON c.country_id = d.country_id;

-- Built notes in a moved area, placed again by the same rule as a first placement
-- (20_stage_notes.sql: smallest country id; in none, international waters), where
-- that gives another country. They join this run's notes to rebuild. A first build
-- (dim_notes empty) finds none.
CREATE TEMP TABLE etl_replaced_notes ON COMMIT DROP AS
WITH
candidates AS (
    SELECT DISTINCT n.note_id, n.geom
    FROM {bronze}.notes AS n
    JOIN etl_moved_areas AS m ON ST_Intersects(m.geom, n.geom)
),

placed AS (
    SELECT
        c.note_id,
        coalesce(
            (
                SELECT a.country_key
                FROM {dwh}.country_areas AS a
                WHERE ST_Intersects(a.geom, c.geom)
                ORDER BY a.country_id
                LIMIT 1
            ),
            -1
        ) AS country_key
    FROM candidates AS c
)

SELECT p.note_id, p.country_key
FROM placed AS p
JOIN {dwh}.dim_notes AS d USING (note_id)
WHERE d.country_key <> p.country_key;

ALTER TABLE etl_replaced_notes ADD PRIMARY KEY (note_id);

INSERT INTO etl_touched_notes (note_id)
SELECT note_id FROM etl_replaced_notes
ON CONFLICT (note_id) DO NOTHING;

ANALYZE etl_touched_notes;

-- A renamed country's names show in its own datamart row and in the top-countries list
-- of every user who acted there: refresh those.
INSERT INTO {dwh}.datamart_dirty_countries (country_id)
SELECT country_id
FROM etl_countries_changed
WHERE renamed
ON CONFLICT (country_id) DO UPDATE SET mark = excluded.mark;

INSERT INTO {dwh}.datamart_dirty_users (user_id)
SELECT DISTINCT u.user_id
FROM etl_countries_changed AS c
JOIN {dwh}.dim_countries AS d USING (country_id)
JOIN {dwh}.facts AS f ON f.country_key = d.country_key
JOIN {dwh}.dim_users AS u ON u.user_key = f.actor_user_key
WHERE c.renamed
    AND u.user_id <> -1
ON CONFLICT (user_id) DO UPDATE SET mark = excluded.mark;

INSERT INTO etl_stats
SELECT 'countries_changed', count(*) FROM etl_countries_changed
UNION ALL
SELECT 'countries_removed', count(*) FROM etl_countries_removed
UNION ALL
SELECT 'notes_placed_again', count(*) FROM etl_replaced_notes;
