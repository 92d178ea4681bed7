-- Bring the datamart state (migrations/0500_mart_state.sql) in line with the facts just
-- written: + the rebuilt notes' facts now, - the same notes' facts before
-- (39_mart_state_before.sql), per cell; cells that fall to zero go. A full state
-- (first build, rebuild, or a warehouse that had facts before the state existed) is
-- all facts, into emptied tables. Each table's cells for users, countries and the
-- whole come from one pass (grouping sets) over the changed facts.
DO $full_state$
BEGIN
    IF (SELECT full_state FROM etl_mart_mode) THEN
        TRUNCATE {dwh}.mart_totals, {dwh}.mart_days, {dwh}.mart_hours, {dwh}.mart_peers,
            {dwh}.mart_hashtags, {dwh}.mart_opened_unclosed, {dwh}.mart_notes;
        -- The largest table fills faster without its second index (45_indexes.sql).
        DROP INDEX IF EXISTS {dwh}.mart_peers_top_idx;
        UPDATE {dwh}.mart_state_built SET built = true;
    END IF;
END
$full_state$;

CREATE TEMP TABLE etl_mart_delta ON COMMIT DROP AS
SELECT 1 AS sign, m.*
FROM etl_mart_facts AS m
WHERE NOT (SELECT full_state FROM etl_mart_mode)
UNION ALL
SELECT -1, b.*
FROM etl_mart_before AS b
UNION ALL
SELECT
    1,
    f.fact_id,
    f.note_id,
    CASE WHEN f.action = 'closed' AND NOT f.is_valid_transition THEN 'invalid_close' ELSE f.action END,
    f.action_date_key,
    f.action_time_of_week_key,
    u.user_id,
    c.country_id,
    f.days_to_resolution,
    NOT f.is_valid_transition
FROM {dwh}.facts AS f
JOIN {dwh}.dim_users AS u ON u.user_key = f.actor_user_key
JOIN {dwh}.dim_countries AS c ON c.country_key = f.country_key
WHERE (SELECT full_state FROM etl_mart_mode);

DROP VIEW etl_mart_facts;

ANALYZE etl_mart_delta;

-- Adds etl_mart_cells (then drops it) to the state table `target`, whose primary key is
-- `keys`: a full state goes into the emptied table in key order (appends to its index);
-- otherwise each cell's `counts` are added to the kept cell, and the cells whose `n`
-- fell to zero go. Only cells this run touched can fall to zero.
CREATE OR REPLACE PROCEDURE pg_temp.add_mart_cells(target regclass, keys text[], counts text[])
LANGUAGE plpgsql AS $add$
DECLARE
    key_list text := (SELECT string_agg(quote_ident(k), ', ') FROM unnest(keys) AS k);
    column_list text := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(keys || counts) AS c);
    nonzero text := format(
        '(%s) <> (%s)',
        (SELECT string_agg(quote_ident(c), ', ') FROM unnest(counts) AS c),
        array_to_string(array_fill('0'::text, ARRAY[cardinality(counts)]), ', ')
    );
    added text := (SELECT string_agg(format('%1$I = t.%1$I + excluded.%1$I', c), ', ') FROM unnest(counts) AS c);
    same_key text := (SELECT string_agg(format('t.%1$I = c.%1$I', k), ' AND ') FROM unnest(keys) AS k);
BEGIN
    IF (SELECT full_state FROM etl_mart_mode) THEN
        EXECUTE format(
            'INSERT INTO %s (%s) SELECT %s FROM etl_mart_cells WHERE %s ORDER BY %s',
            target, column_list, column_list, nonzero, key_list
        );
    ELSE
        EXECUTE format(
            'INSERT INTO %s AS t (%s) SELECT %s FROM etl_mart_cells WHERE %s ON CONFLICT (%s) DO UPDATE SET %s',
            target, column_list, column_list, nonzero, key_list, added
        );
        EXECUTE format('DELETE FROM %s AS t USING etl_mart_cells AS c WHERE %s AND t.n = 0', target, same_key);
    END IF;
    DROP TABLE etl_mart_cells;
END
$add$;

-- Kind 'user' of mart_totals includes the anonymous member (-1): the global row counts
-- its actions. The other tables have no row for it (it has no datamart row).
CREATE TEMP TABLE etl_mart_cells ON COMMIT DROP AS
SELECT
    CASE WHEN grouping(user_id) = 0 THEN 'user' WHEN grouping(country_id) = 0 THEN 'country' ELSE 'global' END
        AS kind,
    CASE WHEN grouping(user_id) = 0 THEN user_id WHEN grouping(country_id) = 0 THEN country_id ELSE 0 END
        AS entity_id,
    action,
    sum(sign)::integer AS n,
    coalesce(sum(sign) FILTER (WHERE invalid), 0)::integer AS invalid_n,
    coalesce(sum(sign) FILTER (WHERE days IS NOT NULL), 0)::integer AS res_n,
    coalesce(sum(sign * days), 0) AS res_sum
FROM etl_mart_delta
GROUP BY GROUPING SETS ((user_id, action), (country_id, action), (action));

CALL pg_temp.add_mart_cells('{dwh}.mart_totals', '{{kind,entity_id,action}}', '{{n,invalid_n,res_n,res_sum}}');

CREATE TEMP TABLE etl_mart_cells ON COMMIT DROP AS
SELECT
    CASE WHEN grouping(user_id) = 0 THEN 'user' WHEN grouping(country_id) = 0 THEN 'country' ELSE 'global' END
        AS kind,
    CASE WHEN grouping(user_id) = 0 THEN user_id WHEN grouping(country_id) = 0 THEN country_id ELSE 0 END
        AS entity_id,
    action,
    date_key,
    sum(sign)::integer AS n,
    coalesce(sum(sign) FILTER (WHERE days IS NOT NULL), 0)::integer AS res_n,
    coalesce(sum(sign * days), 0) AS res_sum
FROM etl_mart_delta
GROUP BY GROUPING SETS ((user_id, action, date_key), (country_id, action, date_key), (action, date_key))
HAVING grouping(user_id) = 1 OR user_id <> -1;  -- the anonymous member has no row

CALL pg_temp.add_mart_cells('{dwh}.mart_days', '{{kind,entity_id,action,date_key}}', '{{n,res_n,res_sum}}');

CREATE TEMP TABLE etl_mart_cells ON COMMIT DROP AS
SELECT
    CASE WHEN grouping(user_id) = 0 THEN 'user' WHEN grouping(country_id) = 0 THEN 'country' ELSE 'global' END
        AS kind,
    CASE WHEN grouping(user_id) = 0 THEN user_id WHEN grouping(country_id) = 0 THEN country_id ELSE 0 END
        AS entity_id,
    action,
    time_of_week_key,
    sum(sign)::integer AS n
FROM etl_mart_delta
GROUP BY GROUPING SETS (
    (user_id, action, time_of_week_key), (country_id, action, time_of_week_key), (action, time_of_week_key)
)
HAVING grouping(user_id) = 1 OR user_id <> -1;  -- the anonymous member has no row

CALL pg_temp.add_mart_cells('{dwh}.mart_hours', '{{kind,entity_id,action,time_of_week_key}}', '{{n}}');

-- A (user, country) pair's cell is the user's row for the country and the country's
-- row for the user. Only what the lists read (migrations/0510): opens and closes per
-- year and in all (year 0), and every action in all (action 'all', year 0).
CREATE TEMP TABLE etl_mart_cells ON COMMIT DROP AS
SELECT k.kind, k.entity_id, k.peer_id, p.action, p.year, p.n
FROM (
    SELECT
        user_id,
        country_id,
        CASE WHEN grouping(action) = 0 THEN action ELSE 'all' END AS action,
        CASE WHEN grouping(year) = 0 THEN year ELSE 0 END::smallint AS year,
        -- a cell of another action by year is no list's: 0, and so not kept
        CASE
            WHEN grouping(action) = 0 AND action NOT IN ('opened', 'closed') THEN 0 ELSE sum(sign)
        END::integer AS n
    FROM (SELECT d.*, d.date_key / 10000 AS year FROM etl_mart_delta AS d) AS delta
    GROUP BY GROUPING SETS ((user_id, country_id, action, year), (user_id, country_id, action), (user_id, country_id))
) AS p
CROSS JOIN LATERAL (
    VALUES ('user', p.user_id, p.country_id), ('country', p.country_id, p.user_id)
) AS k (kind, entity_id, peer_id)
WHERE k.kind <> 'user' OR k.entity_id <> -1;  -- the anonymous member has no row

CALL pg_temp.add_mart_cells('{dwh}.mart_peers', '{{kind,entity_id,peer_id,action,year}}', '{{n}}');

-- Hashtags: the bridge rows of the facts now, and of the facts before.
CREATE TEMP TABLE etl_mart_cells ON COMMIT DROP AS
WITH
tagged AS (
    SELECT d.sign, d.user_id, d.country_id, d.action, b.hashtag_key
    FROM etl_mart_delta AS d
    JOIN {dwh}.fact_hashtags AS b USING (fact_id)
    WHERE d.sign = 1
    UNION ALL
    SELECT d.sign, d.user_id, d.country_id, d.action, b.hashtag_key
    FROM etl_mart_delta AS d
    JOIN etl_mart_before_hashtags AS b USING (fact_id)
    WHERE d.sign = -1
)

SELECT
    CASE WHEN grouping(user_id) = 0 THEN 'user' WHEN grouping(country_id) = 0 THEN 'country' ELSE 'global' END
        AS kind,
    CASE WHEN grouping(user_id) = 0 THEN user_id WHEN grouping(country_id) = 0 THEN country_id ELSE 0 END
        AS entity_id,
    action,
    hashtag_key,
    sum(sign)::integer AS n
FROM tagged
GROUP BY GROUPING SETS ((user_id, action, hashtag_key), (country_id, action, hashtag_key), (action, hashtag_key))
HAVING grouping(user_id) = 1 OR user_id <> -1;  -- the anonymous member has no row

CALL pg_temp.add_mart_cells('{dwh}.mart_hashtags', '{{kind,entity_id,action,hashtag_key}}', '{{n}}');

-- Notes a user opened and did not close themselves: per (note, user), before and now
-- (each side holds whole notes, so the difference is exact).
CREATE TEMP TABLE etl_mart_cells ON COMMIT DROP AS
WITH
per_note AS (
    SELECT sign, user_id, bool_or(action = 'opened') AND NOT bool_or(action = 'closed') AS unclosed
    FROM etl_mart_delta
    WHERE user_id <> -1
    GROUP BY sign, note_id, user_id
)

SELECT user_id, sum(sign)::integer AS n
FROM per_note
WHERE unclosed
GROUP BY user_id;

CALL pg_temp.add_mart_cells('{dwh}.mart_opened_unclosed', '{{user_id}}', '{{n}}');

-- Notes opened, per opener and per country, state and application: the touched notes'
-- dim_notes rows now, less the same notes' rows before (39_mart_state_before.sql); a
-- full state counts every note.
CREATE TEMP TABLE etl_mart_cells ON COMMIT DROP AS
WITH
delta AS (
    SELECT 1 AS sign, m.user_id, m.country_id, m.status, m.application_key
    FROM etl_mart_notes AS m
    WHERE NOT (SELECT full_state FROM etl_mart_mode)
    UNION ALL
    SELECT -1, b.user_id, b.country_id, b.status, b.application_key
    FROM etl_mart_before_notes AS b
    UNION ALL
    SELECT 1, u.user_id, c.country_id, n.status, n.application_key
    FROM {dwh}.dim_notes AS n
    JOIN {dwh}.dim_users AS u ON u.user_key = n.opener_user_key
    JOIN {dwh}.dim_countries AS c ON c.country_key = n.country_key
    WHERE (SELECT full_state FROM etl_mart_mode)
)

SELECT
    CASE WHEN grouping(user_id) = 0 THEN 'user' ELSE 'country' END AS kind,
    CASE WHEN grouping(user_id) = 0 THEN user_id ELSE country_id END AS entity_id,
    status,
    application_key,
    sum(sign)::integer AS n
FROM delta
GROUP BY GROUPING SETS ((user_id, status, application_key), (country_id, status, application_key))
HAVING grouping(user_id) = 1 OR user_id <> -1;  -- the anonymous member has no row

DROP VIEW etl_mart_notes;

CALL pg_temp.add_mart_cells('{dwh}.mart_notes', '{{kind,entity_id,status,application_key}}', '{{n}}');
