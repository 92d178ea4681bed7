-- Scratch tables of one export run (dropped at commit or rollback): the row hash of
-- every entity the datamarts hold now, the ones to render, and what was rendered.
CREATE TEMP TABLE export_hashes (
    document  text NOT NULL,
    id        text NOT NULL,
    row_hash  text NOT NULL,
    PRIMARY KEY (document, id)
) ON COMMIT DROP;
CREATE TEMP TABLE export_changed (
    document  text NOT NULL,
    id        text NOT NULL,
    PRIMARY KEY (document, id)
) ON COMMIT DROP;
CREATE TEMP TABLE export_rendered (
    document  text NOT NULL,
    id        text NOT NULL,
    row_hash  text NOT NULL,
    sha256    text NOT NULL,
    path      text NOT NULL
) ON COMMIT DROP
