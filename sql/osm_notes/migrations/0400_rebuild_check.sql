-- The nightly rebuild's check (incremental == rebuild): one hash per note (its facts,
-- their hashtags and its dim_notes row) and per datamart row, taken from what the
-- incremental runs built just before the rebuild, then compared with what the rebuild
-- built. Unlogged: a working copy the next check takes again.
CREATE UNLOGGED TABLE {dwh}.rebuild_check (
    kind       text NOT NULL,
    entity_id  bigint NOT NULL,
    row_hash   text NOT NULL,
    PRIMARY KEY (kind, entity_id)
);
