-- Whether a relation exists (to_regclass needs the schema and name quoted).
SELECT to_regclass(%(relation)s) IS NOT NULL;
