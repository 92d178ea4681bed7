-- The span of the key's first column over the bronze rows a reconciliation diffs, and the
-- warehouse time before the source's keys are read: rows loaded later are left alone
-- (their source row may be newer than the keys read).
SELECT min({first_key}), max({first_key}), now() FROM {bronze_table};
