-- Shared by the users and countries datamarts: the viewer's profile of each target
-- entity (OSM-Notes-Common user- and country-profile fields), from the state imported
-- by 25_state.sql. Relative periods refer to dm_period.today (UTC). Lists are ordered
-- by quantity, ties broken by id or name, so a marked refresh and a full rebuild build
-- the same bytes. Contract action names: open, commented, closed, reopened (hidden has
-- no field). The lists of peers take their names from dm_peer_lists.

-- The parts are built as `json` (text, no binary form, no key sorting) and parsed into
-- jsonb once, at the end: building each part as jsonb and printing it again for the
-- join cost about a third of this step.
-- A part's members as text: the object without its braces, NULL for an empty object
-- (concat_ws below skips it).
CREATE OR REPLACE FUNCTION pg_temp.members(doc json) RETURNS text
LANGUAGE sql IMMUTABLE AS $members$ SELECT nullif(btrim(substr(doc::text, 2, length(doc::text) - 2)), '') $members$;

CREATE TEMP TABLE dm_profile ON COMMIT DROP AS
WITH
period AS (
    SELECT extract(YEAR FROM today)::integer AS year
    FROM dm_period
),

kinds (action, kind) AS (
    VALUES ('opened', 'open'), ('commented', 'commented'), ('closed', 'closed'), ('reopened', 'reopened')
),

-- Whole history, first and latest note of each action (this year's, month's and day's
-- counts and the tiles: dm_relative, 33_relative.sql).
summary AS (
    SELECT
        d.entity_id,
        json_build_object(
            'history_whole_open', coalesce(sum(d.n) FILTER (WHERE d.action = 'opened'), 0),
            'history_whole_commented', coalesce(sum(d.n) FILTER (WHERE d.action = 'commented'), 0),
            'history_whole_closed', coalesce(sum(d.n) FILTER (WHERE d.action = 'closed'), 0),
            'history_whole_reopened', coalesce(sum(d.n) FILTER (WHERE d.action = 'reopened'), 0),
            'date_starting_creating_notes',
            to_char(to_date((min(d.date_key) FILTER (WHERE d.action = 'opened'))::text, 'YYYYMMDD'), 'YYYY-MM-DD'),
            'date_starting_solving_notes',
            to_char(to_date((min(d.date_key) FILTER (WHERE d.action = 'closed'))::text, 'YYYYMMDD'), 'YYYY-MM-DD'),
            'avg_days_to_resolution', round(sum(d.res_sum) / nullif(sum(d.res_n), 0)::numeric, 2)
        ) AS doc
    FROM dm_days AS d
    GROUP BY d.entity_id
),

firsts AS (
    SELECT
        entity_id,
        json_build_object(
            'first_open_note_id', min(first_note) FILTER (WHERE action = 'opened'),
            'first_commented_note_id', min(first_note) FILTER (WHERE action = 'commented'),
            'first_closed_note_id', min(first_note) FILTER (WHERE action = 'closed'),
            'first_reopened_note_id', min(first_note) FILTER (WHERE action = 'reopened'),
            'latest_open_note_id', min(last_note) FILTER (WHERE action = 'opened'),
            'latest_commented_note_id', min(last_note) FILTER (WHERE action = 'commented'),
            'latest_closed_note_id', min(last_note) FILTER (WHERE action = 'closed'),
            'latest_reopened_note_id', min(last_note) FILTER (WHERE action = 'reopened')
        ) AS doc
    FROM dm_extremes
    GROUP BY entity_id
),

medians AS (
    SELECT entity_id, json_build_object('median_days_to_resolution', round(median::numeric, 2)) AS doc
    FROM dm_medians
),

-- history_<YYYY>_<kind> for every year from 2013 to this one, zeros included.
year_zeros AS (
    SELECT json_object_agg(format('history_%s_%s', y, k.kind), 0) AS doc
    FROM period AS p, generate_series(2013, p.year) AS y, kinds AS k
),

years AS (
    SELECT entity_id, json_object_agg(format('history_%s_%s', year, kind), n) AS doc
    FROM (
        SELECT d.entity_id, d.date_key / 10000 AS year, k.kind, sum(d.n) AS n
        FROM dm_days AS d
        JOIN kinds AS k USING (action)
        GROUP BY d.entity_id, d.date_key / 10000, k.kind
    ) AS per_year
    GROUP BY entity_id
),

-- Hour-of-week grids (ISO day 1 = Monday, UTC hours), cells with actions only.
hours AS (
    SELECT entity_id, json_object_agg('working_hours_of_week_' || grid, cells) AS doc
    FROM (
        -- one cell per (entity, action, hour of week) in the state: no sums needed
        SELECT
            h.entity_id,
            CASE h.action WHEN 'opened' THEN 'opening' WHEN 'commented' THEN 'commenting' ELSE 'closing' END AS grid,
            json_agg(
                json_build_object(
                    'day_of_week', h.time_of_week_key / 100, 'hour_of_day', h.time_of_week_key % 100, 'count', h.n
                )
                ORDER BY h.time_of_week_key
            ) AS cells
        FROM dm_hours AS h
        WHERE h.action IN ('opened', 'commented', 'closed')
        GROUP BY h.entity_id, h.action
    ) AS grids
    GROUP BY entity_id
),

-- The 50 days with most opens and most closes.
peak_days AS (
    SELECT
        entity_id,
        json_object_agg(
            CASE action WHEN 'opened' THEN 'dates_most_open' ELSE 'dates_most_closed' END, days
        ) AS doc
    FROM (
        SELECT
            entity_id,
            action,
            json_agg(json_build_object('date', to_char(to_date(day::text, 'YYYYMMDD'), 'YYYY-MM-DD'), 'quantity', n)
                ORDER BY n DESC, day DESC) AS days
        FROM (
            SELECT
                d.entity_id, d.action, d.date_key AS day, d.n,
                row_number() OVER (PARTITION BY d.entity_id, d.action ORDER BY d.n DESC, d.date_key DESC) AS rank
            FROM dm_days AS d
            WHERE d.action IN ('opened', 'closed')
        ) AS ranked
        WHERE rank <= 50
        GROUP BY entity_id, action
    ) AS lists
    GROUP BY entity_id
),

-- Peers (a user's countries, a country's users) with opens and closes: all time (50,
-- year 0) and per year (10), as 25_state.sql kept them (listed peers only).
peer_lists AS (
    SELECT
        entity_id,
        json_object_agg(CASE action WHEN 'opened' THEN l.opening ELSE l.solving END, entries) AS doc
    FROM (
        SELECT
            r.entity_id,
            r.action,
            json_agg(
                format('{{"rank": %s, "quantity": %s, %s', r.rank, r.n, substr(nm.peer_profile::text, 2))::json
                ORDER BY r.rank
            )
                AS entries
        FROM (
            SELECT
                entity_id, action, peer_id, n,
                row_number() OVER (PARTITION BY entity_id, action ORDER BY n DESC, peer_id) AS rank
            FROM dm_peers
            WHERE action IN ('opened', 'closed') AND year = 0
        ) AS r
        JOIN dm_peer_names AS nm USING (peer_id)
        GROUP BY r.entity_id, r.action
    ) AS lists
    CROSS JOIN dm_peer_lists AS l
    GROUP BY entity_id
),

peer_years AS (
    SELECT entity_id, json_object_agg(format('%s_%s_%s', l.ranking, side, year), entries) AS doc
    FROM (
        SELECT
            r.entity_id,
            CASE r.action WHEN 'opened' THEN 'opening' ELSE 'closing' END AS side,
            r.year,
            json_agg(
                format('{{"rank": %s, "quantity": %s, %s', r.rank, r.n, substr(nm.peer_profile::text, 2))::json
                ORDER BY r.rank
            )
                AS entries
        FROM (
            SELECT
                entity_id, action, year, peer_id, n,
                row_number() OVER (PARTITION BY entity_id, action, year ORDER BY n DESC, peer_id) AS rank
            FROM dm_peers
            WHERE action IN ('opened', 'closed') AND year > 0
        ) AS r
        JOIN dm_peer_names AS nm USING (peer_id)
        GROUP BY r.entity_id, r.action, r.year
    ) AS lists
    CROSS JOIN dm_peer_lists AS l
    GROUP BY entity_id
),

-- Hashtags: every action's, and split by opening, closing and commenting (50 each).
hashtag_lists AS (
    SELECT
        entity_id,
        json_object_agg(list, entries) AS doc,
        json_build_object(
            'favorite_opening_hashtag', min(top) FILTER (WHERE list = 'hashtags_opening'),
            'favorite_resolution_hashtag', min(top) FILTER (WHERE list = 'hashtags_resolution'),
            'opening_hashtag_count', coalesce(sum(uses) FILTER (WHERE list = 'hashtags_opening'), 0),
            'resolution_hashtag_count', coalesce(sum(uses) FILTER (WHERE list = 'hashtags_resolution'), 0)
        ) AS counts
    FROM (
        SELECT
            entity_id,
            list,
            json_agg(json_build_object('rank', rank, 'hashtag', hashtag, 'quantity', n) ORDER BY rank)
                FILTER (WHERE rank <= 50) AS entries,
            min(hashtag) FILTER (WHERE rank = 1) AS top,
            sum(n) AS uses
        FROM (
            SELECT
                entity_id, list, hashtag, n,
                row_number() OVER (PARTITION BY entity_id, list ORDER BY n DESC, hashtag) AS rank
            FROM (
                SELECT entity_id, 'hashtags' AS list, hashtag, sum(n) AS n
                FROM dm_hashtags
                GROUP BY entity_id, hashtag
                UNION ALL
                SELECT
                    entity_id,
                    CASE action
                        WHEN 'opened' THEN 'hashtags_opening'
                        WHEN 'closed' THEN 'hashtags_resolution'
                        ELSE 'hashtags_comments'
                    END,
                    hashtag,
                    n
                FROM dm_hashtags
                WHERE action IN ('opened', 'closed', 'commented')
            ) AS lists
        ) AS ranked
        GROUP BY entity_id, list
    ) AS per_list
    GROUP BY entity_id
),

-- The notes opened (by the user, in the country): how many are resolved, still open,
-- and by which app.
opened AS (
    SELECT
        entity_id,
        json_build_object(
            'notes_resolved_count', coalesce(sum(n) FILTER (WHERE status = 'closed'), 0),
            'notes_still_open_count', coalesce(sum(n) FILTER (WHERE status = 'open'), 0),
            'resolution_rate', round(100.0 * coalesce(sum(n) FILTER (WHERE status = 'closed'), 0) / sum(n), 2)
        ) AS doc
    FROM dm_notes
    GROUP BY entity_id
),

applications AS (
    SELECT
        entity_id,
        json_build_object(
            'applications_used',
            json_agg(
                json_build_object('application_id', application_key, 'application_name', name, 'usage_count', n)
                ORDER BY n DESC, application_key
            ),
            'most_used_application_id', (array_agg(application_key ORDER BY n DESC, application_key))[1]
        ) AS doc
    FROM (
        SELECT o.entity_id, o.application_key, a.name, sum(o.n) AS n
        FROM dm_notes AS o
        JOIN {dwh}.dim_applications AS a USING (application_key)
        GROUP BY o.entity_id, o.application_key, a.name
    ) AS per_app
    GROUP BY entity_id
)

-- The parts joined as text and parsed once (a key in two parts keeps the later value,
-- as jsonb || would). Nulls: only the summary, the firsts and the hashtag counts can
-- have a missing value; they drop it (the viewer's fields are absent, not null).
SELECT
    s.entity_id,
    ('{{' || doc.body || '}}')::jsonb AS profile
FROM summary AS s
CROSS JOIN year_zeros AS z
LEFT JOIN firsts AS f USING (entity_id)
LEFT JOIN medians AS md USING (entity_id)
LEFT JOIN years AS y USING (entity_id)
JOIN dm_relative AS rel USING (entity_id)
LEFT JOIN hours AS h USING (entity_id)
LEFT JOIN peak_days AS k USING (entity_id)
LEFT JOIN peer_lists AS c USING (entity_id)
LEFT JOIN peer_years AS cy USING (entity_id)
LEFT JOIN hashtag_lists AS l USING (entity_id)
LEFT JOIN opened AS o USING (entity_id)
LEFT JOIN applications AS ap USING (entity_id)
CROSS JOIN LATERAL (
    SELECT concat_ws(
        ',',
        pg_temp.members(json_strip_nulls(s.doc)), pg_temp.members(json_strip_nulls(f.doc)),
        pg_temp.members(md.doc), pg_temp.members(z.doc), pg_temp.members(y.doc),
        pg_temp.members(rel.doc),
        pg_temp.members(h.doc), pg_temp.members(k.doc), pg_temp.members(c.doc), pg_temp.members(cy.doc),
        pg_temp.members(l.doc),
        coalesce(
            pg_temp.members(json_strip_nulls(l.counts)), '"opening_hashtag_count": 0, "resolution_hashtag_count": 0'
        ),
        pg_temp.members(o.doc), pg_temp.members(ap.doc)
    ) AS body
) AS doc;

ALTER TABLE dm_profile ADD PRIMARY KEY (entity_id);
