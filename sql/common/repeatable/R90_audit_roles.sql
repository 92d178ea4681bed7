-- Role audit (seed §5.7): fail loudly, listing every missing role.
DO $audit$
DECLARE
    missing text[];
BEGIN
    SELECT array_agg(format('  - role %s does not exist', r) ORDER BY r)
    INTO missing
    FROM unnest({roles}::text[]) AS r
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r);

    IF missing IS NOT NULL THEN
        RAISE EXCEPTION E'role audit failed for pipeline %:\n%',
            {pipeline}, array_to_string(missing, E'\n');
    END IF;
END
$audit$;
