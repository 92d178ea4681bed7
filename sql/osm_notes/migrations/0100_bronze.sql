-- Bronze DDL for the osm_notes pipeline: the source tables as they are, natural keys
-- as PRIMARY KEY. `_dwh_loaded_at` is engine-managed (set on insert and on a merge
-- update): the star-schema ETL's watermark, so a row is picked up when it reaches the
-- warehouse, whatever its OSM timestamps say.

CREATE TABLE {bronze}.countries (
    country_id      integer PRIMARY KEY,
    name            text NOT NULL,
    name_en         text NOT NULL,
    iso_alpha2      char(2) NOT NULL,
    iso_alpha3      char(3) NOT NULL,
    geom            geometry(MultiPolygon, 4326) NOT NULL,
    updated_at      timestamptz NOT NULL,
    _dwh_loaded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE {bronze}.users (
    user_id         integer PRIMARY KEY,
    username        text NOT NULL,
    inserted_at     timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    _dwh_loaded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE {bronze}.notes (
    note_id         integer PRIMARY KEY,
    geom            geometry(Point, 4326) NOT NULL,
    created_at      timestamptz NOT NULL,
    closed_at       timestamptz,
    status          text NOT NULL,
    inserted_at     timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    _dwh_loaded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notes_dwh_loaded_at_idx ON {bronze}.notes (_dwh_loaded_at);

CREATE TABLE {bronze}.note_comments (
    note_id         integer NOT NULL,
    sequence        integer NOT NULL,
    action          text NOT NULL,
    user_id         integer,
    created_at      timestamptz NOT NULL,
    body            text,
    inserted_at     timestamptz NOT NULL,
    _dwh_loaded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (note_id, sequence)
);
CREATE INDEX note_comments_dwh_loaded_at_idx ON {bronze}.note_comments (_dwh_loaded_at);
