-- JSON export bookkeeping (used by pipelines whose catalog declares `export:`).
-- Applied as the pipeline owner.

-- Every version export_json built, and whether it was published. The newest published
-- version is what readers see; retention keeps the newest DWH_EXPORT_KEEP_VERSIONS.
CREATE TABLE {control}.export_versions (
    version          text PRIMARY KEY,
    status           text NOT NULL CHECK (status IN ('published', 'failed', 'deleted')),
    full_export      boolean NOT NULL,
    renderer_hash    text NOT NULL,       -- SQL + schema files + paths that rendered it
    flow_run_id      uuid,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL DEFAULT now(),
    documents        bigint,              -- documents in the version
    rendered         bigint,              -- documents rendered by this run
    removed          bigint,
    target_url       text NOT NULL,
    error_message    text
);

CREATE INDEX export_versions_published_idx
    ON {control}.export_versions (finished_at DESC) WHERE status = 'published';

-- One row per published document: the hash of the datamart row it was rendered from
-- (a different hash re-renders it), the checksum of its bytes and its path. Replaced
-- only after a successful publish, so a document rejected by validation is retried.
CREATE TABLE {control}.export_documents (
    document         text NOT NULL,       -- the catalog's document name (users, global, ...)
    id               text NOT NULL,       -- entity key; '' for a single document
    row_hash         text NOT NULL,
    sha256           text NOT NULL,
    path             text NOT NULL,
    version          text NOT NULL,       -- the version that last rendered it
    PRIMARY KEY (document, id)
);
