-- What OSM-Notes-Viewer renders of a user, a country and the whole (the OSM-Notes-Common
-- profile schemas), beside the datamarts' own columns: one jsonb object per row, built
-- set-based by sql/osm_notes/marts/*/35_profile.sql and published by the JSON export
-- under the contract's field names.
--
-- Some of those fields count relative to "today" (current year, month and day, the
-- 53-week activity string, the last 30 days). datamart_periods holds the day each
-- datamart last computed them: when a refresh runs on a later day it recomputes every
-- entity whose relative fields may have moved, not only the marked ones, so an
-- incremental refresh still equals a full rebuild.
ALTER TABLE {dwh}.datamart_users ADD COLUMN profile jsonb NOT NULL DEFAULT '{{}}';
ALTER TABLE {dwh}.datamart_countries ADD COLUMN profile jsonb NOT NULL DEFAULT '{{}}';
ALTER TABLE {dwh}.datamart_global ADD COLUMN profile jsonb NOT NULL DEFAULT '{{}}';

CREATE TABLE {dwh}.datamart_periods (
    datamart  text PRIMARY KEY,
    as_of     date NOT NULL                       -- UTC day the relative fields refer to
);
