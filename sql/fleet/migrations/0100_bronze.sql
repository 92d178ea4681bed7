-- Bronze DDL for the fleet pipeline (seed §4 Phase A.1). Natural keys as PRIMARY KEY,
-- no surrogate keys (seed §5.3). Columns mirror the source after the catalog's extract
-- expressions (trips.distance_km), so the load stays dumb (seed §8).
-- `_dwh_loaded_at` is engine-managed: when the row last reached the warehouse.

CREATE TABLE {bronze}.devices (
    device_id       bigint PRIMARY KEY,
    imei            text NOT NULL,
    name            text NOT NULL,
    model           text,
    sim_number      text,
    driver_name     text,
    notes           text,
    is_active       boolean NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    _dwh_loaded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE {bronze}.live_positions (
    device_id       bigint PRIMARY KEY,
    gps_time        timestamptz NOT NULL,
    geom            geometry(Point, 4326),
    speed_kmh       numeric(6, 2),
    updated_at      timestamptz NOT NULL,
    _dwh_loaded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE {bronze}.geofences (
    geofence_id     integer PRIMARY KEY,
    name            text NOT NULL,
    kind            text NOT NULL,
    area            geometry(Polygon, 4326) NOT NULL,
    created_at      timestamptz NOT NULL,
    _dwh_loaded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE {bronze}.position_history (
    id              bigint NOT NULL,
    device_id       bigint NOT NULL,
    gps_time        timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    geom            geometry(Point, 4326),
    speed_kmh       numeric(6, 2),
    heading         smallint,
    altitude_m      real,
    satellites      smallint,
    ignition        boolean,
    raw_payload     text,
    _dwh_loaded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, gps_time)
);
CREATE INDEX position_history_recorded_at_idx ON {bronze}.position_history (recorded_at);

CREATE TABLE {bronze}.trips (
    trip_id         bigint PRIMARY KEY,
    device_id       bigint NOT NULL,
    start_time      timestamptz NOT NULL,
    end_time        timestamptz,
    distance_km     numeric(10, 3),
    start_geom      geometry(Point, 4326),
    end_geom        geometry(Point, 4326),
    max_speed_kmh   numeric(6, 2),
    recorded_at     timestamptz NOT NULL,
    _dwh_loaded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE {bronze}.alarms (
    alarm_id        bigint PRIMARY KEY,
    device_id       bigint NOT NULL,
    alarm_type      text NOT NULL,
    alarm_time      timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    geom            geometry(Point, 4326),
    message         text,
    acknowledged    boolean NOT NULL,
    _dwh_loaded_at  timestamptz NOT NULL DEFAULT now()
);
