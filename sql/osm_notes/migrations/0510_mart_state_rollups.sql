-- The datamart state, made flat for entities with long histories (a country has every
-- user who ever acted in it): the refresh reads a country's top lists by index instead
-- of ranking all of its peers, and its notes as counts instead of one row per note.
--
-- mart_peers keeps only the cells the lists read, kept by the transform like the
-- others: opens and closes per year (the yearly lists) and summed over every year as
-- year 0 (the all-time lists), and every action summed as action 'all', year 0 (top
-- peers, peers active). The index below serves "the N largest cells of (entity,
-- action, year)", ties by peer id, as the lists order them.
--
-- mart_notes counts the notes an entity opened (a user: as opener; a country: placed
-- in it) per state and application, for notes_opened, the still-open and resolved
-- counts and the applications of the profiles. Kind 'user' has no row for anonymous.
--
-- The global row reads its note counts there too, and the notes of the last 90 days
-- (created, open by age) by the created_at index below.
--
-- The next transform fills the whole state again from all facts (mart_state_built).
CREATE TABLE {dwh}.mart_notes (
    kind             text NOT NULL,
    entity_id        integer NOT NULL,
    status           text NOT NULL,
    application_key  smallint NOT NULL,
    n                integer NOT NULL,
    PRIMARY KEY (kind, entity_id, status, application_key)
);

CREATE INDEX mart_peers_top_idx ON {dwh}.mart_peers (kind, entity_id, action, year, n DESC, peer_id);

CREATE INDEX dim_notes_created_at_idx ON {dwh}.dim_notes (created_at) INCLUDE (status);

-- Profiles are written (TOAST-compressed) on every refresh and read by every export:
-- lz4 does both in about half the time pglz takes. A server built without lz4 keeps
-- its default.
DO $lz4$
BEGIN
    ALTER TABLE {dwh}.datamart_users ALTER COLUMN profile SET COMPRESSION lz4;
    ALTER TABLE {dwh}.datamart_countries ALTER COLUMN profile SET COMPRESSION lz4;
    ALTER TABLE {dwh}.datamart_global ALTER COLUMN profile SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available: profiles keep the default compression';
END
$lz4$;

UPDATE {dwh}.mart_state_built SET built = false;
