"""The fleet source generator (`dwh seed-source fleet`) against a real PostgreSQL + PostGIS.

Each test gets a fresh source database (the shared `env` fixture) and seeds it as the
non-superuser role that owns it, as an application would.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dwh.onboarding.seed import SourceGeneratorMissingError, SourceSeedError, seed_source
from tests.conftest import Env, app_conninfo

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
ROWS = 1000

# Exactly what generate.sql stores; the extract and load must carry these byte for byte.
TRICKY_TEXT = {
    "comma": "Kamau, Otieno & Sons, Ltd",
    "double_quote": 'Truck "Big Blue" 7',
    "single_quote": "Wanjiru's van",
    "newline": "first line\nsecond line",
    "crlf": "windows line\r\nnext line",
    "backslash": "C:\\fleet\\trucks\\new",
    "trailing_backslash": "ends with a backslash\\",
    "backslash_n": "\\N",
    "tab": "col one\tcol two",
    "swahili": "Gari limefika salama; dereva anapumzika",
    "arabic": "شاحنة التوصيل رقم ٧",  # noqa: RUF001 - Arabic-Indic digit on purpose
    "chinese": "送货卡车七号",
    "emoji": "Delivery 🚚 on the way 📦",
    "empty": "",
}

# Every column that carries tricky text, as (table, column).
TEXT_COLUMNS = [
    ("devices", "name"),
    ("devices", "driver_name"),
    ("devices", "notes"),
    ("alarms", "message"),
    ("position_history", "raw_payload"),
    ("geofences", "name"),
]


@pytest.fixture
def source_db(env: Env) -> str:  # noqa: ARG001  (env points DWH_SOURCE_URL at a fresh database)
    """The test's own source database on the session cluster, as the app role that owns it."""
    return app_conninfo()


def seed(conninfo: str, rows: int = ROWS) -> dict[str, int]:
    return seed_source(conninfo, "fleet", rows=rows, sql_dir=SQL_DIR)


def fetch(
    conninfo: str, query: str | sql.Composable, params: tuple[object, ...] = ()
) -> list[tuple[object, ...]]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def scalar(conninfo: str, query: str | sql.Composable, params: tuple[object, ...] = ()) -> object:
    return fetch(conninfo, query, params)[0][0]


# Incremental tables and their identity key: "rows of the second batch" are those above
# the first batch's largest key.
EVENT_TABLES = {"position_history": "id", "trips": "trip_id", "alarms": "alarm_id"}


def column_bytes(conninfo: str, table: str, column: str) -> set[bytes | None]:
    """Distinct values as the server stores them (UTF-8 bytes), NULL as None."""
    query = sql.SQL("SELECT DISTINCT convert_to({col}, 'UTF8') FROM {table}").format(
        col=sql.Identifier(column), table=sql.Identifier("public", table)
    )
    with psycopg.connect(conninfo) as conn:
        return {None if row[0] is None else bytes(row[0]) for row in conn.execute(query)}


def test_first_call_creates_documented_row_counts(source_db: str) -> None:
    counts = seed(source_db)

    assert counts == {
        "devices": 10,
        "position_history": ROWS,
        "trips": ROWS // 100,
        "alarms": ROWS // 50,
        "live_positions": 10,
        "geofences": 25,
    }


def test_second_call_adds_a_batch_and_leaves_snapshot_tables_sized(source_db: str) -> None:
    seed(source_db)
    counts = seed(source_db)

    assert counts == {
        "devices": 10,
        "position_history": 2 * ROWS,
        "trips": 2 * ROWS // 100,
        "alarms": 2 * ROWS // 50,
        "live_positions": 10,
        "geofences": 25,
    }


def test_device_count_grows_with_batch_size_and_bulk_load_restores_constraints(source_db: str) -> None:
    counts = seed(source_db, rows=150_000)  # >= 100000: the bulk path drops and rebuilds

    assert counts["devices"] == 15
    assert counts["position_history"] == 150_000
    assert counts["trips"] == 1500
    assert counts["alarms"] == 3000
    assert counts["live_positions"] == 15
    constraints = {
        row[0]
        for row in fetch(
            source_db,
            "SELECT conname FROM pg_constraint WHERE conrelid = 'public.position_history'::regclass",
        )
    }
    assert "position_history_device_id_fkey" in constraints
    assert "position_history_device_id_gps_time_key" in constraints
    indexes = {
        row[0]
        for row in fetch(source_db, "SELECT indexname FROM pg_indexes WHERE tablename = 'position_history'")
    }
    assert "position_history_recorded_at_idx" in indexes


def test_every_tricky_text_kind_is_stored_byte_exact(source_db: str) -> None:
    seed(source_db)

    stored: set[bytes | None] = set()
    for table, column in TEXT_COLUMNS:
        stored |= column_bytes(source_db, table, column)
    missing = {kind for kind, text in TRICKY_TEXT.items() if text.encode() not in stored}
    assert not missing, f"tricky text kinds missing from the fleet source: {sorted(missing)}"
    assert None in stored


@pytest.mark.parametrize(("table", "column"), [("alarms", "message"), ("position_history", "raw_payload")])
def test_event_tables_alone_hold_every_tricky_text_kind(source_db: str, table: str, column: str) -> None:
    """An extract of one incremental table already exercises every kind."""
    seed(source_db)

    stored = column_bytes(source_db, table, column)
    missing = {kind for kind, text in TRICKY_TEXT.items() if text.encode() not in stored}
    assert not missing, f"{table}.{column} lacks {sorted(missing)}"
    assert None in stored


@pytest.mark.parametrize(("table", "column"), [("devices", "notes"), ("alarms", "message")])
def test_empty_string_and_null_are_both_present(source_db: str, table: str, column: str) -> None:
    seed(source_db)

    query = sql.SQL(
        "SELECT count(*) FILTER (WHERE {col} = ''), count(*) FILTER (WHERE {col} IS NULL) FROM {table}"
    ).format(col=sql.Identifier(column), table=sql.Identifier("public", table))
    with psycopg.connect(source_db) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    empty, null = row
    assert empty >= 1, f"{table}.{column} has no ''"
    assert null >= 1, f"{table}.{column} has no NULL"


def test_position_geometries_are_null_or_nairobi_points_in_srid_4326(source_db: str) -> None:
    seed(source_db)

    null_geoms, bad_srid, not_point, outside = fetch(
        source_db,
        """
        SELECT
            count(*) FILTER (WHERE geom IS NULL),
            count(*) FILTER (WHERE ST_SRID(geom) <> 4326),
            count(*) FILTER (WHERE GeometryType(geom) <> 'POINT'),
            count(*) FILTER (
                WHERE NOT (ST_X(geom) BETWEEN 36.6 AND 37.1 AND ST_Y(geom) BETWEEN -1.45 AND -1.15)
            )
        FROM position_history
        """,
    )[0]
    assert null_geoms == ROWS // 50  # every 50th fix has no geometry (~2%)
    assert (bad_srid, not_point, outside) == (0, 0, 0)
    assert scalar(source_db, "SELECT count(*) FROM alarms WHERE geom IS NULL") >= 1  # type: ignore[operator]
    assert scalar(source_db, "SELECT count(*) FROM alarms WHERE ST_SRID(geom) <> 4326") == 0


def test_geofences_are_valid_polygons_in_srid_4326(source_db: str) -> None:
    seed(source_db)
    seed(source_db)

    rows = fetch(source_db, "SELECT GeometryType(area), ST_SRID(area), ST_IsValid(area) FROM geofences")
    assert len(rows) == 25
    assert set(rows) == {("POLYGON", 4326, True)}


def test_first_call_backfills_30_days_of_late_arriving_rows_before_now(source_db: str) -> None:
    seed(source_db)

    for table, device_time in (
        ("position_history", "gps_time"),
        ("trips", "start_time"),
        ("alarms", "alarm_time"),
    ):
        oldest, newest, before_device, late = fetch(
            source_db,
            sql.SQL(
                """
                SELECT
                    min(recorded_at) >= now() - interval '31 days',
                    max(recorded_at) < now(),
                    count(*) FILTER (WHERE recorded_at < {device_time}),
                    count(*) FILTER (WHERE recorded_at > {device_time} + interval '1 hour')
                FROM {table}
                """
            ).format(device_time=sql.Identifier(device_time), table=sql.Identifier("public", table)),
        )[0]
        assert oldest, f"{table}: recorded_at older than 30 days"
        assert newest, f"{table}: recorded_at not in the past"
        assert before_device == 0, f"{table}: rows recorded before their device time"
        assert late >= 1, f"{table}: no late arrivals"


def test_second_call_rows_are_recorded_after_everything_from_the_first(source_db: str) -> None:
    seed(source_db)
    first = {
        table: fetch(
            source_db,
            sql.SQL("SELECT max({key}), max(recorded_at) FROM {table}").format(
                key=sql.Identifier(key), table=sql.Identifier("public", table)
            ),
        )[0]
        for table, key in EVENT_TABLES.items()
    }
    watermark = max(row[1] for row in first.values())
    assert isinstance(watermark, datetime)
    first_gps = dict(fetch(source_db, "SELECT device_id, max(gps_time) FROM position_history GROUP BY 1"))

    seed(source_db)

    for table, key in EVENT_TABLES.items():
        new_rows, oldest_new, in_future = fetch(
            source_db,
            sql.SQL(
                """
                SELECT count(*), min(recorded_at), count(*) FILTER (WHERE recorded_at > now())
                FROM {table} WHERE {key} > %s
                """
            ).format(key=sql.Identifier(key), table=sql.Identifier("public", table)),
            (first[table][0],),
        )[0]
        assert new_rows == {"position_history": ROWS, "trips": ROWS // 100, "alarms": ROWS // 50}[table]
        assert isinstance(oldest_new, datetime)
        assert oldest_new > watermark, f"{table}: second batch not newer than the first"
        assert in_future == 0
    older_gps = fetch(
        source_db,
        "SELECT device_id, min(gps_time) FROM position_history WHERE id > %s GROUP BY 1",
        (first["position_history"][0],),
    )
    assert older_gps
    assert all(gps > first_gps[device] for device, gps in older_gps)  # type: ignore[operator]
    duplicates = scalar(
        source_db,
        "SELECT count(*) - count(DISTINCT (device_id, gps_time)) FROM position_history",
    )
    assert duplicates == 0


def test_second_call_touches_a_device_and_moves_live_positions_to_the_newest_fix(source_db: str) -> None:
    seed(source_db)
    first_max = scalar(source_db, "SELECT max(recorded_at) FROM position_history")

    seed(source_db)

    touched = scalar(source_db, "SELECT count(*) FROM devices WHERE updated_at > %s", (first_max,))
    assert touched == 1  # greatest(1, 10 devices / 20)
    stale = scalar(
        source_db,
        """
        SELECT count(*)
        FROM live_positions AS lp
        WHERE lp.gps_time <> (SELECT max(p.gps_time) FROM position_history AS p WHERE p.device_id = lp.device_id)
        """,
    )
    assert stale == 0


def test_failed_statement_names_file_and_line_and_leaves_nothing_behind(
    source_db: str, tmp_path: Path
) -> None:
    generator = tmp_path / "broken" / "source"
    generator.mkdir(parents=True)
    (generator / "schema.sql").write_text("CREATE TABLE IF NOT EXISTS public.half_done (n bigint);\n")
    (generator / "generate.sql").write_text(
        "INSERT INTO public.half_done SELECT generate_series(1, %(rows)s);\n"
        "-- the next statement fails\n"
        "SELECT no_such_column FROM public.half_done;\n"
    )

    with pytest.raises(SourceSeedError, match=r"generate\.sql:3: .*no_such_column"):
        seed_source(source_db, "broken", rows=5, sql_dir=tmp_path)

    assert scalar(source_db, "SELECT to_regclass('public.half_done') IS NULL") is True


def test_pipeline_without_generator_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceGeneratorMissingError, match=r"osm_notes/source/schema\.sql") as raised:
        seed_source("dbname=unused", "osm_notes", rows=10, sql_dir=tmp_path)

    assert isinstance(raised.value, FileNotFoundError)


def test_negative_rows_are_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="rows must be >= 0"):
        seed_source("dbname=unused", "fleet", rows=-1, sql_dir=SQL_DIR)
