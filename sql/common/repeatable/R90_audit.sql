-- Audit (seed §5.7): fail loudly with ONE list of everything that is wrong, so a fix
-- is one round trip: every missing role, and every incremental table whose natural
-- key is not backed by a PRIMARY KEY / UNIQUE (constraint or plain unique index) on
-- exactly those columns, without which ON CONFLICT cannot make a replay harmless
-- (seed §5.3).
DO $audit$
DECLARE
    problems text[];
BEGIN
    SELECT array_agg(format('  - role %s does not exist', r) ORDER BY r)
    INTO problems
    FROM unnest({roles}::text[]) AS r
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r);

    SELECT coalesce(problems, '{{}}') || array_agg(
               format('  - table %s.%s: no PRIMARY KEY/UNIQUE on (%s)%s',
                      {bronze_name}, e.tbl, array_to_string(e.cols, ', '),
                      CASE WHEN to_regclass(quote_ident({bronze_name}) || '.' || quote_ident(e.tbl)) IS NULL
                           THEN ' (table missing)' ELSE '' END)
               ORDER BY e.tbl)
    INTO problems
    FROM jsonb_to_recordset({expected_keys}::jsonb) AS e(tbl text, cols text[])
    WHERE NOT EXISTS (
        SELECT
        FROM pg_index AS i
        JOIN pg_class AS r ON r.oid = i.indrelid
        JOIN pg_namespace AS n ON n.oid = r.relnamespace
        WHERE n.nspname = {bronze_name}
          AND r.relname = e.tbl
          AND i.indisunique
          AND i.indpred IS NULL
          AND i.indexprs IS NULL
          AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
               FROM pg_attribute AS a
               WHERE a.attrelid = r.oid AND a.attnum = ANY (i.indkey::int2[]))
              = (SELECT array_agg(c ORDER BY c) FROM unnest(e.cols) AS c)
    );

    IF cardinality(problems) > 0 THEN
        RAISE EXCEPTION E'audit failed for pipeline %:\n%',
            {pipeline}, array_to_string(problems, E'\n');
    END IF;
END
$audit$;
