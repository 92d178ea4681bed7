"""`dwh verify`: the seed's §9 gates pass after a clean run and name what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dwh.cli import app
from dwh.ingest.extract import extract_table
from dwh.operations.verify import Gate, verify
from flows.ingest import ingest
from tests.conftest import PIPELINES_DIR, Env, seed_fleet

pytestmark = pytest.mark.usefixtures("prefect_harness")

runner = CliRunner()


def _failed(gates: list[Gate]) -> set[tuple[str, str]]:
    return {(g.gate, g.table) for g in gates if not g.ok}


def test_gates_pass_after_a_run_and_fail_naming_table_and_gate(env: Env) -> None:
    env.migrate()
    engine = env.engine()
    assert ("loaded", "trips") in _failed(verify(engine))

    seed_fleet(1000)
    ingest("fleet")
    gates = verify(engine)
    assert _failed(gates) == set()
    assert {g.gate for g in gates} == {
        "loaded",
        "freshness",
        "no recent failures",
        "row parity",
        "geometry round trip",
        "exports/ empty",
        "source hold-back",
        "declared conversion",
    }

    # New source rows above the watermark are in flight, not a parity failure.
    seed_fleet(500)
    assert _failed(verify(engine)) == set()

    env.query(
        "wh",
        "DELETE FROM fleet_bronze.alarms WHERE alarm_id = (SELECT min(alarm_id) FROM fleet_bronze.alarms)",
    )
    env.query(
        "wh",
        "UPDATE fleet_bronze.trips SET start_geom = NULL WHERE trip_id = (SELECT min(trip_id) FROM fleet_bronze.trips)",
    )
    env.query(
        "wh",
        "UPDATE fleet_control.extract_runs SET status = 'failed', error_message = 'boom' WHERE table_name = 'devices'",
    )
    extract_table(engine, engine.catalog.table("geofences"))

    assert _failed(verify(engine)) == {
        ("row parity", "alarms"),
        ("geometry round trip", "trips.start_geom"),
        ("exports/ empty", "*"),
        ("no recent failures", "devices"),
        ("loaded", "devices"),
    }


def _trips_failing(env: Env) -> set[tuple[str, str]]:
    return {(g.gate, g.table) for g in verify(env.engine()) if not g.ok and g.table.startswith("trips")}


def test_wrong_unit_conversion_fails_verify_and_repair_fixes_it_where_a_reseed_cannot(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = (PIPELINES_DIR / "fleet.yaml").read_text(encoding="utf-8")
    broken = shipped.replace("distance_km: distance_m / 1000.0", "distance_km: distance_m")
    assert broken != shipped
    catalog = tmp_path / "pipelines" / "fleet.yaml"
    catalog.parent.mkdir()
    catalog.write_text(broken, encoding="utf-8")
    monkeypatch.setenv("DWH_PIPELINES_DIR", str(catalog.parent))
    env.migrate()
    seed_fleet(1000)
    ingest("fleet", tables=["trips"])
    assert _trips_failing(env) == set()  # bronze matches the (wrong) catalog: nothing can tell yet

    catalog.write_text(shipped, encoding="utf-8")  # the runbook's first step: declare the conversion
    assert _trips_failing(env) == {("declared conversion", "trips.distance_km")}
    reseed = runner.invoke(app, ["run", "fleet", "--table", "trips", "--full-refresh"])
    assert reseed.exit_code == 0, reseed.output
    # DO NOTHING: every wrong row was "skipped" and is still wrong.
    assert _trips_failing(env) == {("declared conversion", "trips.distance_km")}

    since = env.query("source", "SELECT min(recorded_at) - interval '1 second' FROM public.trips")[0][0]
    assert isinstance(since, datetime)
    repair = runner.invoke(
        app,
        [
            "run",
            "fleet",
            "--table",
            "trips",
            "--repair",
            "--from",
            f"{since.astimezone(UTC):%Y-%m-%dT%H:%M:%S}",
        ],
    )

    assert repair.exit_code == 0, repair.output
    assert _trips_failing(env) == set()
    source = env.query("source", "SELECT sum(distance_m), count(*) FROM public.trips")[0]
    bronze = env.query("wh", "SELECT sum(distance_km) * 1000, count(*) FROM fleet_bronze.trips")[0]
    assert bronze == source
    assert env.query(
        "wh",
        "SELECT bool_and(repair) FROM fleet_control.extract_runs WHERE run_id = (SELECT max(run_id) FROM fleet_control.extract_runs)",
    ) == [(True,)]


def test_geometry_loaded_as_null_fails_verify_and_repair_restores_it_where_a_reseed_cannot(
    env: Env,
) -> None:
    env.migrate()
    seed_fleet(1000)
    ingest("fleet", tables=["trips"])
    # What a lost EWKT guard leaves behind: the geometry arrived as NULL.
    env.query("wh", "UPDATE fleet_bronze.trips SET start_geom = NULL")
    assert _trips_failing(env) == {("geometry round trip", "trips.start_geom")}

    reseed = runner.invoke(app, ["run", "fleet", "--table", "trips", "--full-refresh"])
    assert reseed.exit_code == 0, reseed.output
    assert _trips_failing(env) == {("geometry round trip", "trips.start_geom")}

    repair = runner.invoke(app, ["run", "fleet", "--table", "trips", "--repair"])

    assert repair.exit_code == 0, repair.output
    assert _trips_failing(env) == set()
    assert env.query("wh", "SELECT count(*) FROM fleet_bronze.trips WHERE start_geom IS NULL") == env.query(
        "source", "SELECT count(*) FROM public.trips WHERE start_geom IS NULL"
    )
