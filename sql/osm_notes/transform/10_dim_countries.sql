-- Countries, type 1: new ones are added, changed ones (source updated_at moved) get
-- their names corrected and their boundary subdivided again. Notes keep the country
-- they were placed in when first built.
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

DELETE FROM {dwh}.country_areas AS a
USING etl_countries_changed AS c
JOIN {dwh}.dim_countries AS d USING (country_id)
WHERE a.country_key = d.country_key;

INSERT INTO {dwh}.country_areas (country_key, country_id, geom)
SELECT
    d.country_key,
    d.country_id,
    ST_Subdivide(CASE WHEN ST_IsValid(c.geom) THEN c.geom ELSE ST_MakeValid(c.geom) END, 128)
FROM etl_countries_changed AS c
JOIN {dwh}.dim_countries AS d USING (country_id);

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
SELECT 'countries_changed', count(*) FROM etl_countries_changed;
