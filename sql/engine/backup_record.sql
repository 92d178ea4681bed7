-- One ledger line per archive, written right after it is published. INSERT only: a
-- second line for the same key fails (the owner holds no UPDATE), so a line once
-- written is what every later restore compares the archive against.
INSERT INTO {ledger}.backups (key, sha256, bytes)
VALUES (%(key)s, %(sha256)s, %(bytes)s)
