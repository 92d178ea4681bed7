ALTER TABLE {{bronze}}.{table} ADD COLUMN {column} {type};
