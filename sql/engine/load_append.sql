-- Idempotent append (seed §5.3): a replayed part inserts nothing twice.
INSERT INTO {target} ({columns})
SELECT {columns} FROM {stage}
ON CONFLICT ({key}) DO NOTHING;
