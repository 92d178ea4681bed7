-- Add one batch of realistic OSM-notes activity to the osm_notes source database.
--
-- Parameters (psycopg named parameters, bound client-side because this file holds
-- several statements): %(notes)s = new notes to add. Every literal percent sign in this
-- file is doubled because of that binding; modulo is spelled mod().
--
-- Set-based and deterministic (hashint8extended, never random()), so tests can rely on
-- the shape and a million comments take seconds. Runs inside the caller's transaction
-- after schema.sql.
--
-- First call: 36 countries (MultiPolygons on a 9 x 4 grid of "continents" with a cut
-- corner of sea and an island each), users, and notes created 2013-04-24 .. now - 1 day
-- with their whole history: ~2.56 actions a note from 15 scripted histories, including
-- reopenings, hidden notes and invalid transitions (closing a closed note, reopening
-- an open one). 0.5 %% of the notes with 3+ actions have their second action withheld
-- in note_comments_missing.
-- Later calls: %(notes)s new notes after everything already there, one new action on
-- greatest(1, notes / 4) existing notes (closing open notes, reopening or re-closing
-- closed ones, comments), the withheld comments back-filled with their OLD created_at,
-- greatest(1, users / 100) users renamed and new users as the notes grow.
-- notes.status/closed_at follow the Ingestion's trigger: an invalid transition is
-- stored as a comment and leaves the status alone.

-- LOCAL: both end with the seed's transaction. JIT costs more than it saves here;
-- the memory keeps the per-note window sorts of a million actions off disk.
SET LOCAL jit = off;
SET LOCAL work_mem = '256MB';

CREATE TEMP TABLE seed_run ON COMMIT DROP AS
SELECT
    %(notes)s::integer AS new_notes,
    now() AS run_at,
    prev.note_max,
    prev.note_max = 0 AS first_call,
    -- New activity happens after everything already stored, so a note's actions
    -- stay in time order.
    coalesce(prev.action_max, now() - interval '1 day') AS after
FROM (
    SELECT
        coalesce((SELECT max(note_id) FROM public.notes), 0) AS note_max,
        greatest(
            (SELECT max(created_at) FROM public.note_comments),
            (SELECT max(created_at) FROM public.note_comments_missing)
        ) AS action_max
) AS prev;

-- A uniform number in [0, 1) from an id and a salt: cheap, well mixed, repeatable.
CREATE OR REPLACE FUNCTION pg_temp.u(id bigint, salt bigint)
RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
    SELECT mod(abs(hashint8extended(id, salt)), 1000000007) / 1000000007.0::float8
$$;

-- ---------------------------------------------------------------- countries (once)
CREATE TEMP TABLE seed_countries (
    slot integer PRIMARY KEY,   -- 0..35: grid cell, and popularity (0 is busiest)
    country_id integer NOT NULL,
    name text NOT NULL,
    name_en text NOT NULL,
    iso2 char(2) NOT NULL,
    iso3 char(3) NOT NULL
) ON COMMIT DROP;

INSERT INTO seed_countries VALUES
    (0, 51477, 'Deutschland', 'Germany', 'DE', 'DEU'),
    (1, 148838, 'United States', 'United States', 'US', 'USA'),
    (2, 2202162, 'France', 'France', 'FR', 'FRA'),
    (3, 60189, 'Россия', 'Russia', 'RU', 'RUS'),
    (4, 59470, 'Brasil', 'Brazil', 'BR', 'BRA'),
    (5, 382313, '日本', 'Japan', 'JP', 'JPN'),
    (6, 62149, 'United Kingdom', 'United Kingdom', 'GB', 'GBR'),
    (7, 365331, 'Italia', 'Italy', 'IT', 'ITA'),
    (8, 49715, 'Polska', 'Poland', 'PL', 'POL'),
    (9, 1311341, 'España', 'Spain', 'ES', 'ESP'),
    (10, 120027, 'Colombia', 'Colombia', 'CO', 'COL'),
    (11, 304716, 'भारत', 'India', 'IN', 'IND'),
    (12, 60199, 'Україна', 'Ukraine', 'UA', 'UKR'),
    (13, 1428125, 'Canada', 'Canada', 'CA', 'CAN'),
    (14, 2323309, 'Nederland', 'Netherlands', 'NL', 'NLD'),
    (15, 270056, '中国', 'China', 'CN', 'CHN'),
    (16, 114686, 'México', 'Mexico', 'MX', 'MEX'),
    (17, 1473947, 'مصر', 'Egypt', 'EG', 'EGY'),
    (18, 192307, 'Ελλάς', 'Greece', 'GR', 'GRC'),
    (19, 1473946, 'ישראל', 'Israel', 'IL', 'ISR'),
    (20, 307756, '대한민국', 'South Korea', 'KR', 'KOR'),
    (21, 2067731, 'ประเทศไทย', 'Thailand', 'TH', 'THA'),
    (22, 192800, 'ኢትዮጵያ', 'Ethiopia', 'ET', 'ETH'),
    (23, 28699, 'საქართველო', 'Georgia', 'GE', 'GEO'),
    (24, 364066, 'Հայաստան', 'Armenia', 'AM', 'ARM'),
    (25, 304938, 'ایران', 'Iran', 'IR', 'IRN'),
    (26, 192798, 'Kenya', 'Kenya', 'KE', 'KEN'),
    (27, 286393, 'Argentina', 'Argentina', 'AR', 'ARG'),
    (28, 80500, 'Australia', 'Australia', 'AU', 'AUS'),
    (29, 304751, 'Indonesia', 'Indonesia', 'ID', 'IDN'),
    (30, 192787, 'Nigeria', 'Nigeria', 'NG', 'NGA'),
    (31, 49915, 'Việt Nam', 'Vietnam', 'VN', 'VNM'),
    (32, 536807, 'ශ්‍රී ලංකාව', 'Sri Lanka', 'LK', 'LKA'),
    (33, 51684, 'Česko', 'Czechia', 'CZ', 'CZE'),
    (34, 174737, 'Türkiye', 'Turkey', 'TR', 'TUR'),
    (35, 49898, 'កម្ពុជា', 'Cambodia', 'KH', 'KHM');

-- Cell of a slot: 30 x 24 degrees of land starting at (lon0, lat0), 6 degrees of sea
-- to the next cell. The land has its north-east corner cut off (sea); the island is
-- a 2 x 2 degree square in the sea east of it.
CREATE TEMP TABLE seed_cells ON COMMIT DROP AS
SELECT
    slot,
    -162 + 36 * mod(slot, 9) AS lon0,
    -54 + 30 * (slot / 9) AS lat0
FROM seed_countries;

INSERT INTO public.countries (country_id, name, name_en, iso_alpha2, iso_alpha3, geom)
SELECT
    c.country_id,
    c.name,
    c.name_en,
    c.iso2,
    c.iso3,
    ST_Multi(ST_Collect(
        ST_MakePolygon(ST_MakeLine(ARRAY[
            ST_Point(g.lon0, g.lat0, 4326),
            ST_Point(g.lon0 + 30, g.lat0, 4326),
            ST_Point(g.lon0 + 30, g.lat0 + 16, 4326),
            ST_Point(g.lon0 + 22, g.lat0 + 24, 4326),
            ST_Point(g.lon0, g.lat0 + 24, 4326),
            ST_Point(g.lon0, g.lat0, 4326)
        ])),
        ST_MakeEnvelope(g.lon0 + 31, g.lat0 + 1, g.lon0 + 33, g.lat0 + 3, 4326)
    ))
FROM seed_countries AS c
JOIN seed_cells AS g USING (slot)
CROSS JOIN seed_run AS run
WHERE run.first_call;

-- ---------------------------------------------------------------- users
-- Renames first, so a renamed user is recognisable by updated_at = run_at.
UPDATE public.users AS u
SET
    username = regexp_replace(u.username, ' \(.*\)$', '')
        || ' (' || to_char(run.run_at, 'YYYYMMDDHH24MISSUS') || ')',
    updated_at = run.run_at
FROM seed_run AS run
WHERE NOT run.first_call
    AND u.user_id IN (
        SELECT x.user_id
        FROM public.users AS x, seed_run AS r
        ORDER BY hashint8extended(x.user_id, extract(epoch FROM r.run_at)::bigint)
        LIMIT greatest(1, (SELECT count(*) FROM public.users) / 100)
    );

-- One user per 8 notes (at least 20); uids are sparse like OSM's, so a surrogate key
-- used by mistake in place of the uid cannot go unnoticed.
INSERT INTO public.users (user_id, username)
SELECT
    10000 + 13 * i,
    (ARRAY[
        'mapper', 'Андрей', '山田', 'María José', 'محمد', 'Σοφία', 'דוד', 'Παύλος',
        'キタ', 'Łukasz', 'Nguyễn Văn', 'ਗੁਰਪ੍ਰੀਤ', 'Zoë O''Brien', 'Jean-Luc', 'Søren',
        '김민준', 'Олена', 'Ahmet Çelik', 'surveyor 🗺️', 'Amaka'
    ])[1 + mod(i, 20)::integer] || '_' || (10000 + 13 * i)
FROM seed_run AS run,
    generate_series(
        coalesce((SELECT count(*) FROM public.users), 0) + 1,
        greatest(20, (run.note_max + run.new_notes) / 8)
    ) AS i;

CREATE TEMP TABLE seed_user_count ON COMMIT DROP AS
SELECT count(*)::integer AS n FROM public.users;

-- ---------------------------------------------------------------- texts
CREATE TEMP TABLE seed_phrases (
    kind text NOT NULL,
    ord integer NOT NULL,
    val text,
    PRIMARY KEY (kind, ord)
) ON COMMIT DROP;

INSERT INTO seed_phrases (kind, ord, val) VALUES
    ('opened', 0, 'The shop here has closed'),
    ('opened', 1, 'Здесь новая аптека'),
    ('opened', 2, 'この道は通行止めです'),
    ('opened', 3, 'Falta el nombre de la calle'),
    ('opened', 4, 'هذا الطريق غير موجود'),
    ('opened', 5, 'Neue Bushaltestelle „Am Markt"'),
    ('opened', 6, '这里有一家新餐厅 🍜'),
    ('opened', 7, 'Η γέφυρα είναι κλειστή'),
    ('opened', 8, 'הכביש הזה חסום'),
    ('opened', 9, 'Brakuje przejścia dla pieszych'),
    ('opened', 10, 'Café "Big Blue" moved across the road'),
    ('opened', 11, 'O''Brien''s pub is now a bakery 🥐'),
    ('opened', 12, E'Two problems:\r\n1. wrong name\r\n2. wrong opening hours'),
    ('opened', 13, E'Path C:\\trail\\north is blocked'),
    ('opened', 14, E'tab\tseparated\tnote'),
    ('opened', 15, 'यहाँ नया अस्पताल है'),
    ('opened', 16, 'Đường này đã được mở rộng'),
    ('opened', 17, 'Kuna duka jipya hapa'),
    ('opened', 18, 'ร้านนี้ปิดแล้ว'),
    ('opened', 19, 'Hier fehlt ein Radweg 🚲'),
    ('commented', 0, 'Is this still valid?'),
    ('commented', 1, '¿Sigue existiendo?'),
    ('commented', 2, 'Вопрос ещё актуален?'),
    ('commented', 3, '还在吗？'),
    ('commented', 4, 'هل لا يزال هذا موجودًا؟'),
    ('commented', 5, 'Ich war vor Ort 👍 #surveyme'),
    ('commented', 6, 'I need a photo, please'),
    ('commented', 7, ''),
    ('closed', 0, 'Fixed, thanks! ✅'),
    ('closed', 1, 'Erledigt'),
    ('closed', 2, 'Исправлено'),
    ('closed', 3, '已修复'),
    ('closed', 4, 'تم الإصلاح'),
    ('closed', 5, NULL),
    ('closed', 6, 'Resolved after survey #surveyme'),
    ('closed', 7, ''),
    ('reopened', 0, 'Still wrong, reopening'),
    ('reopened', 1, 'Noch nicht behoben'),
    ('reopened', 2, 'Всё ещё не исправлено'),
    ('reopened', 3, NULL),
    ('hidden', 0, NULL),
    ('hidden', 1, 'spam');

-- Hashtags sprinkled on openings and comments (also outside ASCII and with '_').
CREATE TEMP TABLE seed_hashtags (ord integer PRIMARY KEY, val text NOT NULL) ON COMMIT DROP;
INSERT INTO seed_hashtags VALUES
    (0, '#mapathon'), (1, '#MissingMaps'), (2, '#地図'), (3, '#карта'),
    (4, '#HOT_OSM'), (5, '#MapColombia'), (6, '#fixme'), (7, '#surveyme');

-- The app that created a note, as apps sign their notes (where known).
CREATE TEMP TABLE seed_apps (ord integer PRIMARY KEY, prefix text, suffix text) ON COMMIT DROP;
INSERT INTO seed_apps VALUES
    (0, 'Unable to answer "What is the name of this shop?" via StreetComplete 58.1:' || E'\n\n', ''),
    (1, '', E'\n#OsmAnd'),
    (2, '', E'\n#organicmaps android'),
    (3, 'onosm.org submitted note from a business:' || E'\n', ''),
    (4, '', ' #EveryDoor'),
    (5, '', E'\n#mapsme'),
    (6, '', E'\n\nvia Go Map!!'),
    (7, '', ' #CoMaps');

-- ---------------------------------------------------------------- note histories
-- Scripted histories, picked per note by weight (lo..hi in 0..999). `closed_by` is
-- the position of the close in effect at the end (closed_at), `final` the status.
CREATE TEMP TABLE seed_templates (
    lo integer NOT NULL,
    hi integer NOT NULL,
    actions text[] NOT NULL,
    final text NOT NULL,
    closed_by integer
) ON COMMIT DROP;

INSERT INTO seed_templates VALUES
    (0, 239, '{opened}', 'open', NULL),
    (240, 489, '{opened,closed}', 'closed', 2),
    (490, 639, '{opened,commented,closed}', 'closed', 3),
    (640, 739, '{opened,commented}', 'open', NULL),
    (740, 819, '{opened,commented,commented,closed}', 'closed', 4),
    (820, 869, '{opened,closed,reopened,closed}', 'closed', 4),
    (870, 899, '{opened,closed,reopened}', 'open', NULL),
    (900, 939, '{opened,commented,commented,commented,commented,commented,closed}', 'closed', 7),
    -- invalid: closing a closed note (the status keeps the first close)
    (940, 949, '{opened,closed,closed}', 'closed', 2),
    -- invalid: reopening an open note
    (950, 957, '{opened,reopened,commented,closed}', 'closed', 4),
    (958, 967, '{opened,hidden}', 'hidden', NULL),
    (968, 979, '{opened,closed,commented,reopened,commented,closed,reopened,closed}', 'closed', 8),
    (980, 984,
     '{opened,commented,commented,commented,commented,commented,commented,commented,commented,commented,commented,closed}',
     'closed', 12),
    (985, 989, '{opened,closed,hidden}', 'hidden', NULL),
    (990, 999, '{opened,commented,commented}', 'open', NULL);

-- New notes: ids continue, created_at increases with the id over the batch's period.
CREATE TEMP TABLE seed_notes ON COMMIT DROP AS
WITH
ids AS (
    SELECT
        run.note_max + k AS note_id,
        k,
        run.new_notes,
        CASE WHEN run.first_call THEN timestamptz '2013-04-24 00:00:00+00' ELSE run.after END AS t0,
        CASE WHEN run.first_call THEN run.run_at - interval '1 day' ELSE run.run_at END AS t1,
        run.run_at
    FROM seed_run AS run, generate_series(1, run.new_notes) AS k
),

placed AS (
    SELECT
        ids.*,
        -- Busy countries first: slot = 36 * u^2.
        floor(36 * pg_temp.u(note_id, 11) ^ 2)::integer AS slot,
        pg_temp.u(note_id, 12) AS ux,
        pg_temp.u(note_id, 13) AS uy,
        pg_temp.u(note_id, 14) < 0.02 AS on_island
    FROM ids
)

SELECT
    p.note_id,
    date_trunc(
        'second', p.t0 + (p.t1 - p.t0) * ((p.k - 1 + pg_temp.u(p.note_id, 15)) / p.new_notes)
    ) AS created_at,
    CASE
        WHEN p.on_island THEN ST_Point(g.lon0 + 31 + 2 * p.ux, g.lat0 + 1 + 2 * p.uy, 4326)
        -- The land cell's bounding box: ~4.4 %% of these fall in the cut-off sea corner.
        ELSE ST_Point(g.lon0 + 30 * p.ux, g.lat0 + 24 * p.uy, 4326)
    END AS geom,
    t.actions,
    t.final,
    t.closed_by,
    p.run_at
FROM placed AS p
JOIN seed_cells AS g USING (slot)
JOIN seed_templates AS t
    ON mod(abs(hashint8extended(p.note_id, 1)), 1000) BETWEEN t.lo AND t.hi;

-- Every action of the new notes, with times: gaps are log-uniform (1 min .. ~2 years,
-- median ~17 h), squeezed so the last action stays before the end of the period.
CREATE TEMP TABLE seed_actions ON COMMIT DROP AS
WITH
steps AS (
    SELECT
        n.note_id,
        a.pos::integer AS sequence,
        a.action,
        n.created_at,
        n.run_at,
        cardinality(n.actions) AS n_actions,
        sum(CASE WHEN a.pos = 1 THEN 0 ELSE exp(4 + 14 * pg_temp.u(n.note_id * 64 + a.pos, 21)) END)
            OVER (PARTITION BY n.note_id ORDER BY a.pos) AS offset_s
    FROM seed_notes AS n
    CROSS JOIN LATERAL unnest(n.actions) WITH ORDINALITY AS a (action, pos)
),

timed AS (
    SELECT
        s.*,
        date_trunc('second', s.created_at + least(
            s.offset_s * interval '1 second',
            (s.run_at - s.created_at) * ((s.sequence - 1)::float8 / s.n_actions)
        )) AS action_at
    FROM steps AS s
),

opener AS (
    -- 12 %% of notes are anonymous; the rest follow a power law over the users.
    SELECT
        n.note_id,
        CASE
            WHEN pg_temp.u(n.note_id, 31) < 0.12 THEN NULL
            ELSE 10000 + 13 * (1 + floor(uc.n * pg_temp.u(n.note_id, 32) ^ 3)::integer)
        END AS user_id
    FROM seed_notes AS n
    CROSS JOIN seed_user_count AS uc
)

SELECT
    t.note_id,
    t.sequence,
    t.action,
    CASE
        WHEN t.sequence = 1 THEN o.user_id
        WHEN pg_temp.u(t.note_id * 64 + t.sequence, 33) < 0.25 AND o.user_id IS NOT NULL THEN o.user_id
        WHEN pg_temp.u(t.note_id * 64 + t.sequence, 33) < 0.30 THEN NULL
        ELSE 10000 + 13 * (1 + floor(uc.n * pg_temp.u(t.note_id * 64 + t.sequence, 34) ^ 3)::integer)
    END AS user_id,
    t.action_at AS created_at,
    pg_temp.u(t.note_id * 64 + t.sequence, 35) AS text_u
FROM timed AS t
JOIN opener AS o USING (note_id)
CROSS JOIN seed_user_count AS uc;

-- Activity on existing notes (later calls): one action each, after everything stored.
CREATE TEMP TABLE seed_followups ON COMMIT DROP AS
WITH
picked AS (
    SELECT n.note_id, n.status
    FROM public.notes AS n, seed_run AS run
    WHERE NOT run.first_call AND n.status <> 'hidden'
    ORDER BY hashint8extended(n.note_id, extract(epoch FROM run.run_at)::bigint)
    LIMIT greatest(1, (SELECT new_notes FROM seed_run) / 4)
),

chosen AS (
    SELECT
        p.note_id,
        p.status,
        pg_temp.u(p.note_id, extract(epoch FROM run.run_at)::bigint) AS u,
        run.after,
        run.run_at
    FROM picked AS p, seed_run AS run
)

SELECT
    c.note_id,
    (SELECT max(x.sequence) FROM public.note_comments AS x WHERE x.note_id = c.note_id) + 1 AS sequence,
    CASE
        WHEN c.status = 'open' AND c.u < 0.75 THEN 'closed'
        WHEN c.status = 'open' THEN 'commented'
        WHEN c.u < 0.60 THEN 'reopened'
        WHEN c.u < 0.85 THEN 'commented'
        ELSE 'closed'   -- invalid: the note is already closed
    END AS action,
    CASE
        WHEN c.u < 0.1 THEN NULL
        ELSE 10000 + 13 * (1 + floor(uc.n * pg_temp.u(c.note_id, 36) ^ 3)::integer)
    END AS user_id,
    -- strictly after `after`, at most run_at
    date_trunc('second', c.after + (c.run_at - c.after) * (0.01 + 0.98 * pg_temp.u(c.note_id, 37)))
        + interval '1 second' AS created_at,
    pg_temp.u(c.note_id, 38) AS text_u
FROM chosen AS c
CROSS JOIN seed_user_count AS uc;

-- ---------------------------------------------------------------- writes
INSERT INTO public.notes (note_id, geom, created_at, closed_at, status)
SELECT
    n.note_id,
    n.geom,
    n.created_at,
    a.created_at,
    n.final
FROM seed_notes AS n
LEFT JOIN seed_actions AS a ON a.note_id = n.note_id AND a.sequence = n.closed_by;

-- Comment text: the phrase of its kind, sometimes hashtags, and on openings the
-- signature of the app that created the note (~60 %% of notes).
CREATE TEMP TABLE seed_comment_rows ON COMMIT DROP AS
SELECT
    a.note_id,
    a.sequence,
    a.action,
    a.user_id,
    a.created_at,
    CASE
        WHEN a.action = 'opened' THEN
            coalesce(app.prefix, '') || op.val
            || CASE WHEN a.text_u < 0.10 THEN ' ' || h1.val ELSE '' END
            || CASE WHEN a.text_u < 0.03 THEN ' ' || h2.val || ' ' || h1.val ELSE '' END
            || coalesce(app.suffix, '')
        WHEN a.action = 'commented' AND a.text_u < 0.05 THEN coalesce(ph.val, '') || ' ' || h1.val
        ELSE ph.val
    END AS body,
    -- withheld: second action of 0.5 %% of notes with 3+ actions (first call or new notes)
    a.sequence = 2 AND a.n_actions >= 3 AND mod(abs(hashint8extended(a.note_id, 41)), 200) = 0 AS withheld
FROM (
    SELECT sa.*, count(*) OVER (PARTITION BY sa.note_id) AS n_actions FROM seed_actions AS sa
    UNION ALL
    SELECT f.*, 0 AS n_actions FROM seed_followups AS f
) AS a
LEFT JOIN seed_apps AS app
    ON a.action = 'opened' AND app.ord = mod(abs(hashint8extended(a.note_id, 42)), 14)
LEFT JOIN seed_phrases AS op
    ON a.action = 'opened' AND op.kind = 'opened' AND op.ord = mod(abs(hashint8extended(a.note_id, 43)), 20)
LEFT JOIN seed_phrases AS ph
    ON ph.kind = a.action AND a.action <> 'opened'
    AND ph.ord = mod(abs(hashint8extended(a.note_id * 64 + a.sequence, 44)),
                     CASE a.action WHEN 'commented' THEN 8 WHEN 'closed' THEN 8 WHEN 'reopened' THEN 4 ELSE 2 END)
LEFT JOIN seed_hashtags AS h1 ON h1.ord = mod(abs(hashint8extended(a.note_id * 64 + a.sequence, 45)), 8)
LEFT JOIN seed_hashtags AS h2 ON h2.ord = mod(abs(hashint8extended(a.note_id * 64 + a.sequence, 46)), 8);

INSERT INTO public.note_comments (note_id, sequence, action, user_id, created_at, body)
SELECT note_id, sequence, action, user_id, created_at, body
FROM seed_comment_rows
WHERE NOT withheld
ORDER BY note_id, sequence;

-- Back-fill what earlier calls withheld (old created_at, new inserted_at), then park
-- this call's withheld comments.
WITH backfilled AS (
    DELETE FROM public.note_comments_missing RETURNING *
)
INSERT INTO public.note_comments (note_id, sequence, action, user_id, created_at, body)
SELECT note_id, sequence, action, user_id, created_at, body FROM backfilled;

INSERT INTO public.note_comments_missing (note_id, sequence, action, user_id, created_at, body, inserted_at)
SELECT note_id, sequence, action, user_id, created_at, body, now()
FROM seed_comment_rows
WHERE withheld;

-- Status of existing notes after the follow-ups, as the Ingestion's trigger does it:
-- a valid close or reopen changes it, an invalid one (closing a closed note) does not.
UPDATE public.notes AS n
SET
    status = CASE f.action WHEN 'closed' THEN 'closed' ELSE 'open' END,
    closed_at = CASE f.action WHEN 'closed' THEN f.created_at END,
    updated_at = now()
FROM seed_followups AS f
WHERE f.note_id = n.note_id
    AND ((f.action = 'closed' AND n.status = 'open') OR (f.action = 'reopened' AND n.status = 'closed'));

ANALYZE public.notes;
ANALYZE public.note_comments;
