"""`dwh health`: green after a run, and each failure names what is wrong."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest

from dwh.ingest.extract import extract_table
from dwh.operations.health import FRESH_CHECK, Check, check_health
from dwh.operations.verify import verify
from flows.health import health
from flows.ingest import ingest
from tests.conftest import Env, app_conninfo, seed_fleet
from tests.test_ingest import _artifact_markdown

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _failed(checks: list[Check]) -> dict[str, str]:
    return {c.check: c.detail for c in checks if not c.ok}


def test_health_is_green_after_a_run_and_names_each_problem(env: Env) -> None:
    env.migrate()
    engine = env.engine()
    before = _failed(check_health(engine))
    assert before[FRESH_CHECK].startswith("devices (never loaded), live_positions")
    assert before["fleet_bronze.devices non-empty"] == "empty"

    seed_fleet(1000)
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

    # A table that stopped loading 13 hours ago (the longest gap of the schedule is 6 h), a
    # part stuck as long, a failed run.
    seed_fleet(500)
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
    assert problems[FRESH_CHECK].startswith("trips (13.0 h; due by next scheduled run ")
    assert problems["no failures in 24 h"] == "trips (1)"

    env.query(
        "wh",
        "UPDATE fleet_control.extract_runs SET run_started_at = now() - interval '13 hours' WHERE run_id = %s",
        (extracted.run_id,),
    )
    assert _failed(check_health(engine))["exports/ backlog"] == "stuck: trips (1 part(s))"
    with pytest.raises(RuntimeError, match="health check"):
        health("fleet")


def _events(name: str, resource_id: str, since: datetime) -> list[dict[str, object]]:
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.events.filters import (  # noqa: PLC0415
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventResourceFilter,
    )

    wanted = EventFilter(
        occurred=EventOccurredFilter(since=since),
        event=EventNameFilter(name=[name]),
        resource=EventResourceFilter(id=[resource_id]),
    )
    deadline = time.monotonic() + 20
    with get_client(sync_client=True) as client:
        while True:
            events = client.read_events(filter=wanted, limit=50).events
            if events or time.monotonic() > deadline:
                return [e.payload for e in events]
            time.sleep(0.5)


def test_session_idle_in_transaction_stalls_tables_and_health_verify_and_the_run_say_who(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.migrate()
    engine = env.engine()
    seed_fleet(1000)
    ingest("fleet")
    monkeypatch.setenv("DWH_MAX_HOLDBACK_MINUTES", "0.02")  # 1.2 s: fractions of a minute allowed
    started = datetime.now(UTC)
    leaky = psycopg.connect(app_conninfo(), application_name="leaky-pool")  # type: ignore[call-arg]
    try:
        leaky.execute("SELECT 1")  # opens a transaction and leaves it idle
        pid = leaky.info.backend_pid
        seed_fleet(300)
        time.sleep(2)

        stalled = ingest("fleet", tables=["alarms"])

        # The run "succeeds" with nothing new: exactly the silent stall.
        assert [(t.status, t.rows_loaded) for t in stalled.tables] == [("loaded", 0)]
        (outcome,) = stalled.held_back
        assert f"pid {pid} (leaky-pool; idle in transaction" in (outcome.held_back or "")
        markdown = _artifact_markdown("ingest-fleet")
        assert "Held back by an open source transaction" in markdown
        assert f"pid {pid} (leaky-pool" in markdown
        held = env.query(
            "wh",
            "SELECT holder_pid, holder_application, holder_state, holdback_seconds > 1.2"
            " FROM fleet_control.extract_runs WHERE table_name = 'alarms' ORDER BY run_id DESC LIMIT 1",
        )
        assert held == [(pid, "leaky-pool", "idle in transaction", True)]
        (payload,) = _events("dwh.table.held-back", "dwh.table.fleet.alarms", started)
        assert f"pid {pid}" in str(payload["held_by"])

        problems = _failed(check_health(engine, prefect=False))
        assert list(problems) == ["source hold-back (< 0.02 min)"]
        assert problems["source hold-back (< 0.02 min)"].startswith("alarms: upper bound")
        assert f"pid {pid} (leaky-pool; idle in transaction" in problems["source hold-back (< 0.02 min)"]
        gates = {(g.gate, g.table): g for g in verify(engine) if not g.ok}
        assert set(gates) == {("source hold-back", "alarms")}
        assert f"pid {pid} (leaky-pool" in gates["source hold-back", "alarms"].detail
    finally:
        leaky.close()

    # The runbook's fix: end the holding session, run again.
    after = ingest("fleet")
    assert {t.table: t.rows_loaded > 0 for t in after.tables}["alarms"]
    assert after.held_back == []
    assert _failed(check_health(engine, prefect=False)) == {}
    assert [g for g in verify(engine) if not g.ok] == []


def _at(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=ZoneInfo("Africa/Nairobi"))


def test_freshness_follows_the_schedule_a_missed_daytime_run_alarms_and_the_night_gap_does_not(
    env: Env,
) -> None:
    """fleet runs at 05, 08, 11, 14, 17, 20, 23 Nairobi time; grace 60 min."""
    env.migrate()
    engine = env.engine()
    seed_fleet(500)
    ingest("fleet")

    def stale(now: datetime) -> str | None:
        return _failed(check_health(engine, prefect=False, now=now)).get(FRESH_CHECK)

    def verify_stale(now: datetime) -> set[str]:
        return {g.table for g in verify(engine, now=now) if g.gate == "freshness" and not g.ok}

    # Every table last loaded by the 11:00 run.
    env.query("wh", "UPDATE fleet_control.extract_runs SET run_finished_at = %s", (_at(1, 11, 5),))
    assert stale(_at(1, 14, 50)) is None  # the 14:00 run may still be running
    assert verify_stale(_at(1, 14, 50)) == set()
    # The 14:00 run never came: 4.4 h after the last load, far under 2 x the 6 h cadence.
    missed = stale(_at(1, 15, 30))
    assert missed is not None
    assert "trips (4.4 h; due by next scheduled run 2026-12-01 14:00 EAT + 60 min grace)" in missed
    assert verify_stale(_at(1, 15, 30)) == {t.name for t in engine.catalog.tables}

    # Last loaded by the 23:00 run: the 6 h night gap is not an alarm (a fixed 4 h would be).
    env.query("wh", "UPDATE fleet_control.extract_runs SET run_finished_at = %s", (_at(1, 23, 5),))
    assert stale(_at(2, 5, 55)) is None
    assert verify_stale(_at(2, 5, 55)) == set()
    assert stale(_at(2, 6, 10)) is not None  # the 05:00 run missed


def _history(env: Env, table: str, last_day: int, trailing: list[int]) -> None:
    """Replace the table's run log: `trailing[n-1]` rows loaded n days ago, `last_day` in the last 24 h."""
    env.query("wh", "DELETE FROM fleet_control.extract_runs WHERE table_name = %s", (table,))
    for days_ago, rows in [(0, last_day), *enumerate(trailing, start=1)]:
        env.query(
            "wh",
            "INSERT INTO fleet_control.extract_runs"
            " (table_name, mode, status, run_started_at, run_finished_at, rows_loaded, rows_skipped)"
            " VALUES (%s, 'append', 'loaded', now() - make_interval(days => %s, hours => 2),"
            " now() - make_interval(days => %s, hours => 1), %s, 0)",
            (table, days_ago, days_ago, rows),
        )


def test_growth_warns_when_rows_per_day_fall_far_below_the_trailing_median(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.migrate()
    engine = env.engine()
    seed_fleet(500)
    ingest("fleet")

    def growth() -> Check:
        (found,) = [c for c in check_health(engine, prefect=False) if c.check.startswith("tables growing")]
        return found

    # 14 ordinary days of 1,000 rows and one reseed day of 200,000: median 1,000, mean ~15,000.
    trailing = [1000] * 14
    trailing[2] = 200_000
    _history(env, "position_history", 300, trailing)
    assert growth().check == "tables growing (>= 0.25 x median rows/day)"
    assert growth().ok  # 300 >= 0.25 x the median (a mean would call this short)

    _history(env, "position_history", 100, trailing)
    short = growth()
    assert not short.ok
    assert short.warning  # a warning: health itself still passes
    assert short.detail == "position_history: 100 rows in 24 h, median 1,000/day over 14 days"
    assert short.tables == ("position_history",)
    assert [c.check for c in check_health(engine, prefect=False) if c.failed] == []

    monkeypatch.setenv("DWH_GROWTH_MIN_RATIO", "0.05")  # configurable
    assert growth().ok
    monkeypatch.setenv("DWH_GROWTH_MIN_RATIO", "0.5")
    monkeypatch.setenv("DWH_GROWTH_DAYS", "7")
    assert growth().detail == "position_history: 100 rows in 24 h, median 1,000/day over 7 days"
