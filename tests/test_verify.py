"""`dwh verify`: the seed's §9 gates pass after a clean run and name what is wrong."""

from __future__ import annotations

import pytest

from dwh.extract import extract_table
from dwh.seed import seed_source
from dwh.settings import SourceSettings
from dwh.verify import Gate, verify
from flows.ingest import ingest
from tests.conftest import SQL_DIR, Env

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _failed(gates: list[Gate]) -> set[tuple[str, str]]:
    return {(g.gate, g.table) for g in gates if not g.ok}


def test_gates_pass_after_a_run_and_fail_naming_table_and_gate(env: Env) -> None:
    env.migrate()
    engine = env.engine()
    assert ("loaded", "trips") in _failed(verify(engine))

    seed_source(SourceSettings().conninfo(), "fleet", rows=1000, sql_dir=SQL_DIR)  # type: ignore[call-arg]
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
    }

    # New source rows above the watermark are in flight, not a parity failure.
    seed_source(SourceSettings().conninfo(), "fleet", rows=500, sql_dir=SQL_DIR)  # type: ignore[call-arg]
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
