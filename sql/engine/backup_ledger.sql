-- The recorded sha256 of each of the given archives that has a ledger line.
SELECT key, sha256
FROM {ledger}.backups
WHERE key = ANY(%(keys)s::text[])
