"""`dwh health`: green after a run, and each failure names what is wrong."""

from __future__ import annotations

import pytest

from dwh.extract import extract_table
from dwh.health import Check, check_health
from dwh.seed import seed_source
from dwh.settings import SourceSettings
from flows.health import health
from flows.ingest import ingest
from tests.conftest import SQL_DIR, Env

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _failed(checks: list[Check]) -> dict[str, str]:
    return {c.check: c.detail for c in checks if not c.ok}


def test_health_is_green_after_a_run_and_names_each_problem(env: Env) -> None:
    env.migrate()
    engine = env.engine()
    before = _failed(check_health(engine))
    assert before["tables fresh (< 2x cadence)"].startswith("devices (never loaded), live_positions")
    assert before["fleet_bronze.devices non-empty"] == "empty"

    seed_source(SourceSettings().conninfo(), "fleet", rows=1000, sql_dir=SQL_DIR)  # type: ignore[call-arg]
    ingest("fleet")
    checks = health("fleet")
    assert _failed(checks) == {}
    assert {c.check for c in checks} >= {
        "source reachable",
        "warehouse reachable",
        "storage writable",
        "exports/ backlog",
        "flow ingest succeeded recently",
        "free disk (spool)",
    }

    # A table that stopped loading 13 hours ago (limit 2 x 6 h), a part stuck as long, a failed run.
    seed_source(SourceSettings().conninfo(), "fleet", rows=500, sql_dir=SQL_DIR)  # type: ignore[call-arg]
    extracted = extract_table(engine, engine.catalog.table("trips"))
    env.query(
        "wh",
        "UPDATE fleet_control.extract_runs SET run_started_at = now() - interval '13 hours',"
        " run_finished_at = now() - interval '13 hours' WHERE table_name = 'trips'",
    )
    env.query(
        "wh", "UPDATE fleet_control.extract_runs SET status = 'failed' WHERE run_id = %s", (extracted.run_id,)
    )
    env.query(
        "wh",
        "UPDATE fleet_control.extract_runs SET run_started_at = now() WHERE run_id = %s",
        (extracted.run_id,),
    )
    problems = _failed(check_health(engine))
    assert problems["tables fresh (< 2x cadence)"] == "trips (13.0 h)"
    assert problems["no failures in 24 h"] == "trips (1)"

    env.query(
        "wh",
        "UPDATE fleet_control.extract_runs SET run_started_at = now() - interval '13 hours' WHERE run_id = %s",
        (extracted.run_id,),
    )
    assert _failed(check_health(engine))["exports/ backlog"] == "stuck: trips (1 part(s))"
    with pytest.raises(RuntimeError, match="health check"):
        health("fleet")
