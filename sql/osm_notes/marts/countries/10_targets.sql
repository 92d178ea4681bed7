-- The countries to refresh: those the ETL marked, or every country (international waters included) for a full
-- rebuild. `mark` is kept so 50_clear_marks.sql clears only marks that did not change
-- while this refresh ran.
-- The UTC day the profile's relative fields (current year/month/day, last 53 weeks,
-- last 30 days) refer to, and the day the datamart last computed them.
CREATE TEMP TABLE dm_period ON COMMIT DROP AS
SELECT
    (now() AT TIME ZONE 'UTC')::date AS today,
    (SELECT p.as_of FROM {dwh}.datamart_periods AS p WHERE p.datamart = 'countries') AS as_of;

ANALYZE dm_period;  -- one row: the profile's joins with it are planned on that

CREATE TEMP TABLE dm_targets ON COMMIT DROP AS
SELECT m.country_id AS id, m.mark
FROM {dwh}.datamart_dirty_countries AS m
UNION ALL
-- Before the first refresh with profiles (no period yet: migrations/0310_viewer_profiles.sql)
-- every row is built, and on the first refresh of a new year too (a one-time cost, about
-- a full rebuild): each profile lists the years up to this one, zeros included.
SELECT d.country_id, NULL::bigint
FROM {dwh}.datamart_countries AS d, dm_run AS r
WHERE NOT r.full_rebuild
    -- a one-time filter: on most runs the table is not read at all
    AND (SELECT as_of IS NULL OR date_trunc('year', as_of) < date_trunc('year', today) FROM dm_period)
    AND NOT EXISTS (SELECT FROM {dwh}.datamart_dirty_countries AS m WHERE m.country_id = d.country_id)
UNION ALL
SELECT c.country_id, NULL::bigint
FROM {dwh}.dim_countries AS c, dm_run AS r
WHERE r.full_rebuild
    AND NOT EXISTS (SELECT FROM {dwh}.datamart_dirty_countries AS m WHERE m.country_id = c.country_id);

ALTER TABLE dm_targets ADD PRIMARY KEY (id);
ANALYZE dm_targets;

-- A new day within the year: the countries active since the start of the year or the 53
-- weeks before the day last computed have fields relative to today (this year's,
-- month's and day's counts, the tiles) that may have moved. Only those are computed
-- again (_entity/33_relative.sql, merged by 38_write.sql): nothing else of theirs
-- changed, or the ETL would have marked them.
CREATE TEMP TABLE dm_moved ON COMMIT DROP AS
SELECT d.country_id AS id
FROM {dwh}.datamart_countries AS d, dm_period AS p, dm_run AS r
WHERE NOT r.full_rebuild
    -- a one-time filter: on most runs the table is not read at all
    AND (SELECT as_of < today AND date_trunc('year', as_of) = date_trunc('year', today) FROM dm_period)
    AND d.last_action_at >= least(date_trunc('year', p.as_of), p.as_of - 371)
    AND NOT EXISTS (SELECT FROM dm_targets AS t WHERE t.id = d.country_id);

ALTER TABLE dm_moved ADD PRIMARY KEY (id);
ANALYZE dm_moved;

-- A full rebuild starts from an empty table (rows of entities without facts go too).
DO $full_rebuild$
BEGIN
    IF (SELECT full_rebuild FROM dm_run) THEN
        TRUNCATE {dwh}.datamart_countries;
    END IF;
END
$full_rebuild$;
