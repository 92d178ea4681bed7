"""`dwh import-csv`: polars splits an external CSV into parts the normal load takes."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from dwh.ingest.csv_import import CsvImportError, import_csv
from dwh.ingest.load import load_pending
from tests.conftest import PIPELINES_DIR, Env, app_conninfo, seed_fleet

ALARMS_CSV = (
    "COPY (SELECT alarm_id, device_id, alarm_type, alarm_time, recorded_at,"
    " CASE WHEN geom IS NULL THEN NULL ELSE ST_AsEWKT(geom) END AS geom, message, acknowledged"
    " FROM public.alarms ORDER BY alarm_id) TO STDOUT WITH (FORMAT csv, HEADER)"
)


@pytest.fixture
def small_parts(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fleet catalog with 7-row parts for alarms, so one file splits into several."""
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    text = (
        (PIPELINES_DIR / "fleet.yaml")
        .read_text()
        .replace("    key: [alarm_id]\n", "    key: [alarm_id]\n    chunk_rows: 7\n")
    )
    (pipelines / "fleet.yaml").write_text(text)
    monkeypatch.setenv("DWH_PIPELINES_DIR", str(pipelines))  # after `env` set the default
    assert env.catalog().table("alarms").chunk_rows == 7


def _dump_alarms(path: Path) -> None:
    with (
        psycopg.connect(app_conninfo()) as conn,  # type: ignore[call-arg]
        path.open("wb") as out,
        conn.cursor().copy(ALARMS_CSV) as copy,
    ):
        for chunk in copy:
            out.write(chunk)


def _digest(env: Env, db: str) -> object:
    schema = "public" if db == "source" else "fleet_bronze"
    return env.query(
        db,
        "SELECT md5(string_agg(concat_ws('|', alarm_id, coalesce(quote_literal(message), 'NULL'),"
        f" coalesce(ST_AsEWKT(geom), 'NULL')), E'\\n' ORDER BY alarm_id)) FROM {schema}.alarms",
    )[0][0]


@pytest.mark.usefixtures("small_parts")
def test_imported_file_is_split_into_parts_and_loads_byte_exact(env: Env, tmp_path: Path) -> None:
    env.migrate()
    counts = seed_fleet(1000)
    dump = tmp_path / "20260424_1400_EAT.csv"
    _dump_alarms(dump)
    engine = env.engine()
    table = engine.catalog.table("alarms")

    result = import_csv(engine, table, dump)

    expected_parts = -(-counts["alarms"] // 7)
    assert (result.rows, result.parts) == (counts["alarms"], expected_parts)
    assert len(env.location_keys("fleet", "exports", "alarms")) == expected_parts
    loads = load_pending(engine, table)
    assert [(r.rows_loaded, r.rows_skipped) for r in loads] == [(counts["alarms"], 0)]
    assert _digest(env, "wh") == _digest(env, "source")
    nulls_and_empties = env.query(
        "wh",
        "SELECT count(*) FILTER (WHERE message IS NULL), count(*) FILTER (WHERE message = '') FROM fleet_bronze.alarms",
    )[0]
    assert nulls_and_empties[0] > 0
    assert nulls_and_empties[1] > 0
    watermark = env.query(
        "wh",
        "SELECT last_extracted_at::text FROM fleet_control.extract_watermarks WHERE table_name = 'alarms'",
    )
    assert watermark == [("2000-01-01 00:00:00+00",)]

    again = import_csv(engine, table, dump)
    replay = load_pending(engine, table)
    assert [(r.run_id, r.rows_loaded, r.rows_skipped) for r in replay] == [
        (again.run_id, 0, counts["alarms"])
    ]


def test_header_that_does_not_match_bronze_is_refused_naming_the_column(env: Env, tmp_path: Path) -> None:
    env.migrate()
    bad = tmp_path / "alarms.csv"
    bad.write_text(
        "alarm_id,device_id,kind,alarm_time,recorded_at,geom,message,acknowledged\n1,1,x,now,now,,m,t\n"
    )
    engine = env.engine()

    with pytest.raises(
        CsvImportError,
        match=r"alarms\.csv line 1 \(header\): missing column\(s\) alarm_type; unknown column\(s\) kind",
    ):
        import_csv(engine, engine.catalog.table("alarms"), bad)

    assert env.location_keys("fleet", "exports") == []
    assert env.query("wh", "SELECT count(*) FROM fleet_control.extract_runs") == [(0,)]


def test_a_nul_byte_is_refused_with_its_line_before_anything_is_registered(env: Env, tmp_path: Path) -> None:
    """Past the import, COPY would refuse the part at every load and the table would stay blocked."""
    env.migrate()
    seed_fleet(300)
    dump = tmp_path / "alarms.csv"
    _dump_alarms(dump)
    lines = dump.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b",", b",\x00", 1)
    dump.write_bytes(b"\n".join(lines))
    engine = env.engine()

    with pytest.raises(CsvImportError, match=r"alarms\.csv line 4: a NUL byte"):
        import_csv(engine, engine.catalog.table("alarms"), dump)

    assert env.location_keys("fleet", "exports") == []
    assert env.query("wh", "SELECT count(*) FROM fleet_control.extract_runs") == [(0,)]
