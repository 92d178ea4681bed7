-- Add one batch of realistic GPS-fleet activity to the fleet source database.
--
-- Parameters (psycopg named parameters, bound client-side because this file holds
-- several statements): %(rows)s = position_history rows to add. Because of that
-- binding every literal percent sign in this file is written doubled; modulo is
-- spelled mod() to keep the doubling rare.
--
-- Everything is set-based (one generate_series per device) so two million
-- positions take seconds, and deterministic (no random()) so tests can assert
-- exact values. Runs inside the caller's transaction after schema.sql.
--
-- First call (no incremental rows yet): creates the devices and geofences and
-- back-fills 30 days of history whose recorded_at trails gps_time by seconds,
-- hours or days (late arrivals) and stays below now(). Later calls continue every
-- device's track after its latest gps_time and stamp recorded_at with the
-- inserting transaction's now(), as DEFAULT now() would: after everything already
-- present and after any extract that ran before, so an incremental run has news.

-- LOCAL: these end with the seed's transaction. JIT compiling costs ~0.4 s a
-- statement and saved nothing measurable on a 2M-row batch; the memory lets a
-- bulk batch rebuild the recorded_at index in one in-memory sort (3.2 s -> 1.7 s
-- at 4M rows).
SET LOCAL jit = off;
SET LOCAL maintenance_work_mem = '256MB';

-- The state of this run, captured before anything is inserted.
CREATE TEMP TABLE seed_run ON COMMIT DROP AS
SELECT
    %(rows)s::bigint AS position_rows,
    now() AS run_at,
    prev.recorded_max,
    prev.recorded_max IS NULL AS first_call,
    -- A bulk batch (large against the table) is inserted without the device
    -- foreign key and the recorded_at index, which are rebuilt afterwards: a
    -- row-by-row FK check costs ~10 us a row (more than half of a 2M-row batch)
    -- and interleaved recorded_at inserts split index pages. Rebuilding reads the
    -- whole table, hence the ratio; it also locks position_history until commit.
    %(rows)s >= 100000 AND %(rows)s * 20 >= prev.position_max_id AS bulk_load
FROM (
    SELECT
        greatest(
            (SELECT max(recorded_at) FROM public.position_history),
            (SELECT max(recorded_at) FROM public.trips),
            (SELECT max(recorded_at) FROM public.alarms)
        ) AS recorded_max,
        coalesce((SELECT max(id) FROM public.position_history), 0) AS position_max_id
) AS prev;
ANALYZE seed_run;

-- Text that breaks naive CSV writers, COPY parsers and encoders. Every text column
-- the extract has to carry takes its first rows from here, so even a 1000-row seed
-- holds each kind; tests/test_seed_fleet.py asserts these exact values.
CREATE TEMP TABLE seed_tricky_text (
    ord integer PRIMARY KEY,
    kind text NOT NULL,
    val text
) ON COMMIT DROP;

INSERT INTO seed_tricky_text (ord, kind, val) VALUES
    (1, 'null', NULL),
    (2, 'empty', ''),
    (3, 'comma', 'Kamau, Otieno & Sons, Ltd'),
    (4, 'double_quote', 'Truck "Big Blue" 7'),
    (5, 'single_quote', 'Wanjiru''s van'),
    (6, 'newline', E'first line\nsecond line'),
    (7, 'crlf', E'windows line\r\nnext line'),
    (8, 'backslash', E'C:\\fleet\\trucks\\new'),
    (9, 'trailing_backslash', E'ends with a backslash\\'),
    (10, 'backslash_n', E'\\N'),
    (11, 'tab', E'col one\tcol two'),
    (12, 'swahili', 'Gari limefika salama; dereva anapumzika'),
    (13, 'arabic', 'شاحنة التوصيل رقم ٧'),
    (14, 'chinese', '送货卡车七号'),
    (15, 'emoji', 'Delivery 🚚 on the way 📦');
ANALYZE seed_tricky_text;

-- Where a device is at a given moment: an ellipse around its home point whose
-- angle is a pure function of time, so tracks continue across calls. Tiny SQL
-- functions so the planner inlines them (no per-row call cost); callers pass the
-- angle as a plain column because inlining refuses costly arguments used twice.
-- ST_Point(x, y, srid) needs PostGIS 3.2+ and is ~1 us a row cheaper than
-- ST_SetSRID(ST_MakePoint(x, y)).
CREATE OR REPLACE FUNCTION pg_temp.fleet_track_angle(phase float8, at timestamptz)
RETURNS float8 LANGUAGE sql STABLE AS $$
    SELECT phase + date_part('epoch', at) / 2400.0
$$;

CREATE OR REPLACE FUNCTION pg_temp.fleet_track_point(
    home_lon float8, home_lat float8, angle float8
) RETURNS geometry LANGUAGE sql IMMUTABLE AS $$
    SELECT ST_Point(home_lon + 0.07 * sin(angle), home_lat + 0.05 * cos(angle), 4326)
$$;

-- Compass heading along that loop (exact for a circle, within ~10 degrees here).
CREATE OR REPLACE FUNCTION pg_temp.fleet_track_heading(angle float8)
RETURNS smallint LANGUAGE sql IMMUTABLE AS $$
    SELECT mod((90 + degrees(angle))::bigint, 360)::smallint
$$;

-- Batch rows are dealt out evenly: the first mod(total, devices) devices get one
-- more. `first` is the index of a device's first row within the batch.
CREATE OR REPLACE FUNCTION pg_temp.seed_share(total bigint, devices bigint, slot bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT total / devices + CASE WHEN slot < mod(total, devices) THEN 1 ELSE 0 END
$$;

CREATE OR REPLACE FUNCTION pg_temp.seed_first(total bigint, devices bigint, slot bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT slot * (total / devices) + least(slot, mod(total, devices))
$$;

-- Back office edits a few devices between batches (snapshot tables change too).
-- Which ones varies from call to call but not within one: hashed on the run time.
UPDATE public.devices AS d
SET
    sim_number = '+2547' || lpad(mod(d.device_id * 104729 + 7, 100000000)::text, 8, '0'),
    updated_at = picked.run_at
FROM (
    SELECT x.device_id, run.run_at
    FROM public.devices AS x
    CROSS JOIN seed_run AS run
    WHERE NOT run.first_call
    ORDER BY md5(x.device_id::text || run.run_at::text)
    LIMIT greatest(1, (SELECT count(*) FROM public.devices) / 20)
) AS picked
WHERE d.device_id = picked.device_id;

-- The fleet itself: greatest(10, rows / 10000) devices, created once.
INSERT INTO public.devices (
    device_id, imei, name, model, sim_number, driver_name, notes, is_active,
    created_at, updated_at
)
SELECT
    i,
    '86' || lpad((i * 7919 + 104723)::text, 13, '0'),
    CASE
        WHEN i <= 15 AND nullif(name_text.val, '') IS NOT NULL THEN name_text.val
        ELSE plate.plate
    END,
    (ARRAY['Concox GT06N', 'Jimi JM-VL03', 'Teltonika FMB920', 'Queclink GV300', NULL])
        [1 + mod(i, 5)],
    '+2547' || lpad(mod(i * 7907, 100000000)::text, 8, '0'),
    CASE
        WHEN i <= 15 THEN driver_text.val
        ELSE (ARRAY[
            'John Kamau', 'Mary Wanjiku', 'Peter Otieno', 'Grace Akinyi', 'Ali Hassan',
            'Fatuma Mohamed', 'Joseph Mwangi', 'Esther Njeri', NULL
        ])[1 + mod(i, 9)]
    END,
    CASE
        WHEN i <= 15 THEN notes_text.val
        WHEN mod(i, 4) = 0 THEN NULL
        WHEN mod(i, 4) = 1 THEN ''
        ELSE 'Serviced at ' || (20000 + i * 311) || ' km; tyres rotated'
    END,
    mod(i, 7) <> 0,
    run.run_at - interval '60 days' + i * interval '7 minutes',
    run.run_at - interval '60 days' + i * interval '7 minutes'
        + mod(i, 3) * interval '5 days'
FROM seed_run AS run
CROSS JOIN generate_series(1, greatest(10, run.position_rows / 10000)) AS i
CROSS JOIN LATERAL (
    SELECT
        'K' || chr(65 + mod(i / 26, 26)::integer) || chr(65 + mod(i, 26)::integer) || ' '
        || lpad(mod(i * 37, 1000)::text, 3, '0') || chr(65 + mod(i * 7, 26)::integer)
        AS plate
) AS plate
-- Rotations chosen so devices 1..10 alone cover every tricky kind: notes take
-- kinds 1..10 (NULL and '' first), driver names 11..15 then 1..5.
LEFT JOIN seed_tricky_text AS notes_text ON notes_text.ord = mod(i - 1, 15) + 1
LEFT JOIN seed_tricky_text AS driver_text ON driver_text.ord = mod(i + 9, 15) + 1
LEFT JOIN seed_tricky_text AS name_text ON name_text.ord = mod(i + 4, 15) + 1
WHERE NOT EXISTS (SELECT 1 FROM public.devices);

-- Each device's share of this batch, its time window (after its latest fix, or
-- the past 30 days on a first call) and its track parameters.
CREATE TEMP TABLE seed_device ON COMMIT DROP AS
SELECT
    shared.*,
    -- Whole-second steps when there is room (GPS clocks tick in seconds), else
    -- microseconds so UNIQUE (device_id, gps_time) holds for quick re-seeds.
    CASE
        WHEN shared.span_us / (shared.positions + 1) >= 1000000
            THEN shared.span_us / (shared.positions + 1) / 1000000 * 1000000
        ELSE greatest(shared.span_us / (shared.positions + 1), 1)
    END AS position_step_us,
    greatest(shared.span_us / (shared.trips + 1), 1) AS trip_step_us,
    greatest(shared.span_us / (shared.alarms + 1), 1) AS alarm_step_us
FROM (
    SELECT
        placed.*,
        greatest(
            floor(date_part('epoch', run.run_at - placed.window_start) * 1000000)::bigint, 0
        ) AS span_us,
        pg_temp.seed_share(run.position_rows, fleet.n_devices, placed.slot) AS positions,
        pg_temp.seed_first(run.position_rows, fleet.n_devices, placed.slot) AS first_position,
        pg_temp.seed_share(run.position_rows / 100, fleet.n_devices, placed.slot) AS trips,
        pg_temp.seed_first(run.position_rows / 100, fleet.n_devices, placed.slot) AS first_trip,
        pg_temp.seed_share(run.position_rows / 50, fleet.n_devices, placed.slot) AS alarms,
        pg_temp.seed_first(run.position_rows / 50, fleet.n_devices, placed.slot) AS first_alarm
    FROM (
        SELECT
            row_number() OVER (ORDER BY d.device_id) - 1 AS slot,
            d.device_id,
            d.imei,
            -- Golden-ratio scatter of homes keeps the loops (+-0.07 deg) inside
            -- lon 36.6..37.1, lat -1.45..-1.15 (greater Nairobi).
            (36.70 + 0.30 * (d.device_id * 0.6180339887 - floor(d.device_id * 0.6180339887)))
                ::float8 AS home_lon,
            (-1.38 + 0.16 * (d.device_id * 0.7548776662 - floor(d.device_id * 0.7548776662)))
                ::float8 AS home_lat,
            (mod(d.device_id * 97, 628) / 100.0)::float8 AS phase,
            coalesce(
                (
                    SELECT p.gps_time
                    FROM public.position_history AS p
                    WHERE p.device_id = d.device_id
                    ORDER BY p.gps_time DESC
                    LIMIT 1
                ),
                date_trunc('second', now()) - interval '30 days'
            ) AS window_start
        FROM public.devices AS d
    ) AS placed
    CROSS JOIN seed_run AS run
    CROSS JOIN (SELECT greatest(count(*), 1) AS n_devices FROM public.devices) AS fleet
) AS shared;
ANALYZE seed_device;

DO $$
BEGIN
    IF (SELECT bulk_load FROM seed_run) THEN
        ALTER TABLE public.position_history
            DROP CONSTRAINT IF EXISTS position_history_device_id_fkey;
        DROP INDEX IF EXISTS public.position_history_recorded_at_idx;
    END IF;
END
$$;

-- Positions, device by device: consecutive rows are consecutive keys of the
-- (device_id, gps_time) index, so its inserts append rather than split pages.
-- g numbers the batch's rows; it drives the deterministic variety (every 50th
-- geom NULL, late arrivals, tricky payloads in the first 15 rows).
INSERT INTO public.position_history (
    device_id, gps_time, recorded_at, geom, speed_kmh, heading, altitude_m,
    satellites, ignition, raw_payload
)
SELECT
    fix.device_id,
    fix.gps_time,
    CASE
        WHEN run.first_call THEN least(
            fix.gps_time + CASE
                WHEN mod(fix.g, 997) = 0 THEN (1 + mod(fix.g, 3)) * interval '1 day'
                WHEN mod(fix.g, 97) = 0 THEN (1 + mod(fix.g, 23)) * interval '1 hour'
                ELSE (2 + mod(fix.g, 118)) * interval '1 second'
            END,
            run.run_at - interval '1 millisecond'
        )
        -- A later batch is inserted now: recorded_at is the DB-insertion time
        -- (DEFAULT now()), never back-dated below an earlier extract's bound.
        ELSE run.run_at
    END,
    CASE
        WHEN mod(fix.g, 50) <> 7
            THEN pg_temp.fleet_track_point(fix.home_lon, fix.home_lat, fix.angle)
    END,
    -- Built from integers: float8 -> numeric conversion costs ~1 us a row.
    CASE
        WHEN NOT fix.ignition THEN 0
        ELSE (
            500 + mod(fix.k * 7919 + fix.device_id * 104729, 9000)
            + CASE WHEN mod(fix.g, 401) = 0 THEN 6000 ELSE 0 END
        )::numeric * 0.01
    END,
    pg_temp.fleet_track_heading(fix.angle),
    (1650 + mod(fix.k * 31 + fix.device_id * 7, 150) + 0.5::float8 * mod(fix.g, 3))::real,
    (3 + mod(fix.g * 7 + fix.k, 11))::smallint,
    fix.ignition,
    CASE
        WHEN fix.g < 15 THEN (SELECT t.val FROM seed_tricky_text AS t WHERE t.ord = fix.g + 1)
        WHEN mod(fix.g, 500) = 11 THEN NULL
        WHEN mod(fix.g, 500) = 12 THEN ''
        ELSE '{"imei":"' || fix.imei || '","seq":' || fix.k || ',"acc":'
            || CASE WHEN fix.ignition THEN '1' ELSE '0' END || ',"fw":"GT06-2.1"}'
    END
FROM seed_run AS run
CROSS JOIN (
    SELECT
        dealt.device_id,
        dealt.imei,
        dealt.home_lon,
        dealt.home_lat,
        dealt.k,
        dealt.first_position + dealt.k AS g,
        dealt.window_start
            + (dealt.position_step_us * (dealt.k + 1)) * interval '1 microsecond'
            AS gps_time,
        -- = fleet_track_angle(phase, gps_time), without the per-row date_part.
        pg_temp.fleet_track_angle(dealt.phase, dealt.window_start)
            + (dealt.position_step_us * (dealt.k + 1))::float8 / 2400e6::float8 AS angle,
        (dealt.k + 1)::float8 / (dealt.positions + 1) AS progress,
        CASE
            WHEN mod(dealt.first_position + dealt.k, 211) <> 5
                THEN mod(dealt.k + dealt.device_id, 40) < 30
        END AS ignition
    FROM (
        SELECT dev.*, generate_series(0::bigint, dev.positions - 1) AS k
        FROM seed_device AS dev
        ORDER BY dev.slot
    ) AS dealt
    OFFSET 0  -- evaluate the columns above once per row, not once per use
) AS fix;

CREATE INDEX IF NOT EXISTS position_history_recorded_at_idx
    ON public.position_history (recorded_at);

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1
        FROM pg_catalog.pg_constraint
        WHERE conrelid = 'public.position_history'::regclass
            AND conname = 'position_history_device_id_fkey'
    ) THEN
        ALTER TABLE public.position_history
            ADD CONSTRAINT position_history_device_id_fkey
            FOREIGN KEY (device_id) REFERENCES public.devices;
    END IF;
END
$$;

-- Trips: rows / 100, spread over each device's window, each shorter than the gap
-- to the next (and at most ~1.5 h); every 101st has no end yet.
INSERT INTO public.trips (
    device_id, start_time, end_time, distance_m, start_geom, end_geom,
    max_speed_kmh, recorded_at
)
SELECT
    leg.device_id,
    leg.start_time,
    leg.end_time,
    CASE
        WHEN leg.end_time IS NOT NULL THEN round(
            1.3 * ST_Distance(leg.start_geom::geography, leg.end_geom::geography)
            + 300 + mod(leg.t, 900)
        )::integer
    END,
    leg.start_geom,
    leg.end_geom,
    (4500 + mod(leg.t * 7, 7000) + 25 * mod(leg.t, 4))::numeric * 0.01,
    CASE
        WHEN run.first_call THEN least(
            coalesce(leg.end_time, leg.start_time) + CASE
                WHEN mod(leg.t, 53) = 0 THEN (1 + mod(leg.t, 30)) * interval '1 hour'
                ELSE (5 + mod(leg.t, 300)) * interval '1 second'
            END,
            run.run_at - interval '1 millisecond'
        )
        -- A later batch is inserted now: recorded_at is the DB-insertion time
        -- (DEFAULT now()), never back-dated below an earlier extract's bound.
        ELSE run.run_at
    END
FROM seed_run AS run
CROSS JOIN (
    -- Each level is materialised (OFFSET 0) so what the next one uses twice is a
    -- plain column: computed once, and the track functions can inline.
    SELECT
        angled.*,
        pg_temp.fleet_track_point(angled.home_lon, angled.home_lat, angled.start_angle)
            AS start_geom,
        CASE
            WHEN angled.end_time IS NOT NULL
                THEN pg_temp.fleet_track_point(angled.home_lon, angled.home_lat, angled.end_angle)
        END AS end_geom
    FROM (
        SELECT
            scheduled.*,
            pg_temp.fleet_track_angle(scheduled.phase, scheduled.start_time) AS start_angle,
            pg_temp.fleet_track_angle(scheduled.phase, scheduled.end_time) AS end_angle
        FROM (
            SELECT
                dev.device_id,
                dev.home_lon,
                dev.home_lat,
                dev.phase,
                dev.first_trip + j AS t,
                departure.start_time,
                CASE
                    WHEN mod(dev.first_trip + j, 101) <> 50
                        THEN departure.start_time + least(
                            dev.trip_step_us * (30 + mod((dev.first_trip + j) * 13, 50)) / 100,
                            (6 + mod((dev.first_trip + j) * 13, 84)) * 60000000::bigint
                        ) * interval '1 microsecond'
                END AS end_time,
                (j + 1)::float8 / (dev.trips + 1) AS progress
            FROM seed_device AS dev
            CROSS JOIN LATERAL generate_series(0::bigint, dev.trips - 1) AS j
            CROSS JOIN LATERAL (
                SELECT date_trunc(
                    'second',
                    dev.window_start + (dev.trip_step_us * (j + 1)) * interval '1 microsecond'
                ) AS start_time
            ) AS departure
            OFFSET 0
        ) AS scheduled
        OFFSET 0
    ) AS angled
    OFFSET 0
) AS leg;

-- Alarms: rows / 50, every 20th without a fix (5%%).
INSERT INTO public.alarms (
    device_id, alarm_type, alarm_time, recorded_at, geom, message, acknowledged
)
SELECT
    ev.device_id,
    ev.alarm_type,
    ev.alarm_time,
    CASE
        WHEN run.first_call THEN least(
            ev.alarm_time + CASE
                WHEN mod(ev.a, 31) = 0 THEN (1 + mod(ev.a, 4)) * interval '1 day'
                ELSE (1 + mod(ev.a, 90)) * interval '1 second'
            END,
            run.run_at - interval '1 millisecond'
        )
        -- A later batch is inserted now: recorded_at is the DB-insertion time
        -- (DEFAULT now()), never back-dated below an earlier extract's bound.
        ELSE run.run_at
    END,
    CASE
        WHEN mod(ev.a, 20) <> 3
            THEN pg_temp.fleet_track_point(ev.home_lon, ev.home_lat, ev.angle)
    END,
    CASE
        WHEN ev.a < 15 THEN (SELECT t.val FROM seed_tricky_text AS t WHERE t.ord = ev.a + 1)
        WHEN mod(ev.a, 9) = 4 THEN NULL
        WHEN mod(ev.a, 13) = 6 THEN ''
        WHEN ev.alarm_type = 'overspeed'
            THEN 'Speed ' || (81 + mod(ev.a, 40)) || ' km/h exceeds limit of 80 km/h'
        WHEN ev.alarm_type = 'geofence_enter' THEN 'Entered "Industrial Area Depot"'
        WHEN ev.alarm_type = 'geofence_exit' THEN 'Left "JKIA Cargo Terminal", gate 2'
        WHEN ev.alarm_type = 'sos' THEN 'SOS pressed; call driver back'
        WHEN ev.alarm_type = 'low_battery'
            THEN 'Backup battery at ' || (5 + mod(ev.a, 10)) || '%%'
        WHEN ev.alarm_type = 'power_cut' THEN 'External power disconnected'
        WHEN ev.alarm_type = 'harsh_braking' THEN 'Deceleration 0.6g'
        ELSE 'Idling for ' || (10 + mod(ev.a, 50)) || ' min, engine on'
    END,
    ev.alarm_time < run.run_at - interval '1 day' AND mod(ev.a, 4) <> 0
FROM seed_run AS run
CROSS JOIN (
    -- Materialised levels, as for trips: alarm_time and angle become plain columns.
    SELECT timed.*, pg_temp.fleet_track_angle(timed.phase, timed.alarm_time) AS angle
    FROM (
        SELECT
            dev.device_id,
            dev.home_lon,
            dev.home_lat,
            dev.phase,
            dev.first_alarm + j AS a,
            -- Overspeed and idling dominate, as on a real fleet.
            (ARRAY[
                'overspeed', 'idle', 'overspeed', 'geofence_enter', 'overspeed',
                'geofence_exit', 'idle', 'harsh_braking', 'low_battery', 'power_cut', 'sos'
            ])[1 + mod((dev.first_alarm + j) * 7, 11)] AS alarm_type,
            least(
                date_trunc(
                    'second',
                    dev.window_start + (dev.alarm_step_us * (j + 1)) * interval '1 microsecond'
                ) + mod(dev.first_alarm + j, 59) * interval '1 second',
                now()
            ) AS alarm_time,
            (j + 1)::float8 / (dev.alarms + 1) AS progress
        FROM seed_device AS dev
        CROSS JOIN LATERAL generate_series(0::bigint, dev.alarms - 1) AS j
        OFFSET 0
    ) AS timed
    OFFSET 0
) AS ev;

-- Live positions: every device's newest fix (index-backed lookup per device).
INSERT INTO public.live_positions AS lp (device_id, gps_time, geom, speed_kmh, updated_at)
SELECT d.device_id, newest.gps_time, newest.geom, newest.speed_kmh, run.run_at
FROM public.devices AS d
CROSS JOIN seed_run AS run
CROSS JOIN LATERAL (
    SELECT p.gps_time, p.geom, p.speed_kmh
    FROM public.position_history AS p
    WHERE p.device_id = d.device_id
    ORDER BY p.gps_time DESC
    LIMIT 1
) AS newest
ON CONFLICT (device_id) DO UPDATE
SET
    gps_time = excluded.gps_time,
    geom = excluded.geom,
    speed_kmh = excluded.speed_kmh,
    updated_at = excluded.updated_at
WHERE lp.gps_time IS DISTINCT FROM excluded.gps_time;

-- Geofences: 25 fixed polygons (squares and circles), created once.
INSERT INTO public.geofences (geofence_id, name, kind, area, created_at)
SELECT
    i,
    CASE
        WHEN i <= 15 THEN coalesce(name_text.val, 'Geofence ' || i || ' (unnamed)')
        ELSE (ARRAY[
            'Industrial Area Depot', 'JKIA Cargo Terminal', 'Westlands Customer Hub',
            'Mlolongo Weighbridge', 'Thika Road Mall', 'Kenyatta Avenue No-Go',
            'Ngong Road Fuel Stop', 'Karen Parking', 'Embakasi Yard', 'Ruiru Bypass Exit'
        ])[i - 15]
    END,
    (ARRAY['depot', 'customer', 'no_go', 'fuel_station', 'parking'])[1 + mod(i, 5)],
    CASE
        WHEN mod(i, 2) = 0 THEN ST_MakeEnvelope(
            centre.lon - centre.half, centre.lat - centre.half,
            centre.lon + centre.half, centre.lat + centre.half, 4326
        )
        ELSE ST_Buffer(
            ST_SetSRID(ST_MakePoint(centre.lon, centre.lat), 4326), centre.half, 'quad_segs=8'
        )
    END,
    run.run_at - interval '45 days' + i * interval '1 hour'
FROM seed_run AS run
CROSS JOIN generate_series(1, 25) AS i
CROSS JOIN LATERAL (
    SELECT
        36.65 + 0.40 * (i * 0.6180339887 - floor(i * 0.6180339887)) AS lon,
        -1.42 + 0.24 * (i * 0.7548776662 - floor(i * 0.7548776662)) AS lat,
        0.002 + 0.0005 * mod(i, 7) AS half
) AS centre
LEFT JOIN seed_tricky_text AS name_text ON name_text.ord = i
ON CONFLICT (geofence_id) DO NOTHING;
