-- Does a catalog `columns:` expression still compile against the source table? LIMIT 0
-- reads no row; a renamed or dropped column fails here with PostgreSQL naming it, before
-- anything is extracted (seed §8).
SELECT {expression} AS probe FROM {source} LIMIT 0
