-- LOCAL: ends with the refresh. The aggregates stay in memory; the facts of a few
-- thousand marked entities are fetched by index (SSD-like page costs), not by a scan.
SET LOCAL work_mem = '256MB';
SET LOCAL jit = off;
SET LOCAL random_page_cost = 1.1;

-- The countries to refresh: those the ETL marked, or every country (international waters included) for a full
-- rebuild. `mark` is kept so 50_clear_marks.sql clears only marks that did not change
-- while this refresh ran.
CREATE TEMP TABLE dm_targets ON COMMIT DROP AS
SELECT m.country_id AS id, m.mark
FROM {dwh}.datamart_dirty_countries AS m
UNION ALL
SELECT c.country_id, NULL::bigint
FROM {dwh}.dim_countries AS c, dm_run AS r
WHERE r.full_rebuild
    AND NOT EXISTS (SELECT FROM {dwh}.datamart_dirty_countries AS m WHERE m.country_id = c.country_id);

ALTER TABLE dm_targets ADD PRIMARY KEY (id);
ANALYZE dm_targets;

-- A full rebuild starts from an empty table (rows of entities without facts go too).
DO $full_rebuild$
BEGIN
    IF (SELECT full_rebuild FROM dm_run) THEN
        TRUNCATE {dwh}.datamart_countries;
    END IF;
END
$full_rebuild$;
