-- OSM-notes source tables (the ingestion database the warehouse extracts from),
-- shaped like OSM-Notes-Ingestion's base tables.
--
-- Idempotent: `dwh seed-source osm_notes` runs this before every generate.sql.
-- PostGIS must already be installed (as in the fleet source).
--
-- Watermarks are DB times, never OSM times: `inserted_at` is when a comment reached
-- this database (a comment back-filled later keeps its old `created_at` but gets a new
-- `inserted_at`), `updated_at` when a note's status or a user's name last changed.
-- No foreign keys between notes and comments: like the API feed, a comment can land
-- before its note row, and the warehouse has to cope.

CREATE TABLE IF NOT EXISTS public.countries (
    country_id  integer PRIMARY KEY,           -- the OSM relation id
    name        text NOT NULL,                 -- local name, in its own script
    name_en     text NOT NULL,
    iso_alpha2  char(2) NOT NULL,
    iso_alpha3  char(3) NOT NULL,
    geom        geometry(MultiPolygon, 4326) NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS countries_geom_idx ON public.countries USING gist (geom);

CREATE TABLE IF NOT EXISTS public.users (
    user_id     integer PRIMARY KEY,           -- the OSM uid
    username    text NOT NULL UNIQUE,          -- only the latest name is kept
    inserted_at timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.notes (
    note_id     integer PRIMARY KEY,
    geom        geometry(Point, 4326) NOT NULL,
    created_at  timestamptz NOT NULL,          -- OSM time of the opening action
    closed_at   timestamptz,                   -- set while status = 'closed'
    status      text NOT NULL CHECK (status IN ('open', 'closed', 'hidden')),
    inserted_at timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS notes_updated_at_idx ON public.notes (updated_at);

CREATE TABLE IF NOT EXISTS public.note_comments (
    note_id     integer NOT NULL,
    sequence    integer NOT NULL,              -- per-note ordinal, as OSM numbers actions
    action      text NOT NULL
                CHECK (action IN ('opened', 'commented', 'closed', 'reopened', 'hidden')),
    user_id     integer,                       -- NULL: anonymous
    created_at  timestamptz NOT NULL,          -- OSM time of the action
    body        text,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (note_id, sequence)
);
CREATE INDEX IF NOT EXISTS note_comments_inserted_at_idx ON public.note_comments (inserted_at);

-- Comments the API has but this database missed (the Ingestion's "insert missing
-- comments" verifier work list). generate.sql parks a few here and back-fills them on
-- the next call, with their old created_at. Not part of the catalog.
CREATE TABLE IF NOT EXISTS public.note_comments_missing (
    LIKE public.note_comments,
    PRIMARY KEY (note_id, sequence)
);
