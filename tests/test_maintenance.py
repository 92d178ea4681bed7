"""Weekly maintenance: vacuum, run-log retention that keeps freshness, processed/ kept by default."""

from __future__ import annotations

import pytest

from dwh.ingest.extract import extract_table
from flows.ingest import ingest
from flows.maintenance import maintenance
from tests.conftest import Env, seed_fleet

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_maintenance_vacuums_prunes_old_runs_and_keeps_the_audit_trail(env: Env) -> None:
    env.migrate()
    seed_fleet(1000)
    ingest("fleet", tables=["trips", "devices"])
    ingest("fleet", tables=["trips", "devices"])
    env.query("wh", "UPDATE fleet_control.extract_runs SET run_started_at = now() - interval '200 days'")
    processed = env.location_keys("fleet", "processed")

    result = maintenance("fleet")

    assert "fleet_bronze.position_history" in result.vacuumed
    vacuumed = env.query(
        "wh",
        "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = 'fleet_bronze' AND last_vacuum IS NOT NULL",
    )
    assert vacuumed == [(6,)]
    # Two old runs per table, only the latest loaded one stays: freshness still answers.
    assert result.runs_deleted == 2
    assert env.query(
        "wh", "SELECT table_name, count(*) FROM fleet_control.extract_runs GROUP BY 1 ORDER BY 1"
    ) == [
        ("devices", 1),
        ("trips", 1),
    ]
    assert len(env.query("wh", "SELECT * FROM fleet_control.v_table_freshness")) == 2
    assert env.location_keys("fleet", "processed") == processed
    assert result.processed_deleted == ()

    pruned = maintenance("fleet", processed_days=0)
    assert set(pruned.processed_deleted) == set(processed)
    assert env.location_keys("fleet", "processed") == []


def test_retention_keeps_an_old_failed_run_whose_parts_still_wait_in_exports(env: Env) -> None:
    env.migrate()
    seed_fleet(1000)
    engine = env.engine()
    ingest("fleet", tables=["alarms"])
    seed_fleet(300)
    stuck = extract_table(engine, engine.catalog.table("alarms"))
    # Its load failed long ago (say, bad data nobody fixed) and the part still waits.
    env.query(
        "wh",
        "UPDATE fleet_control.extract_runs SET status = 'failed', error_message = 'boom',"
        " run_started_at = now() - interval '200 days' WHERE run_id = %s",
        (stuck.run_id,),
    )
    assert len(env.location_keys("fleet", "exports", "alarms")) == 1

    result = maintenance("fleet")

    assert result.runs_deleted == 0
    assert env.query(
        "wh", "SELECT status FROM fleet_control.extract_runs WHERE run_id = %s", (stuck.run_id,)
    ) == [("failed",)]
    after = ingest("fleet", tables=["alarms"])  # recovery still knows the run and loads it
    assert {t.table: t.status for t in after.tables} == {"alarms": "loaded"}
    assert env.location_keys("fleet", "exports") == []
    source = env.query("source", "SELECT count(*) FROM public.alarms")
    assert env.query("wh", "SELECT count(*) FROM fleet_bronze.alarms") == source


def test_the_runbooks_fix_for_an_orphaned_part_makes_the_table_load_again(env: Env) -> None:
    """docs/runbook.md, "parts in exports/ belong to no run": move them to rejected/, then backfill."""
    from dwh.ingest.parts import rejected_prefix  # noqa: PLC0415
    from dwh.ingest.report import IngestFailedError  # noqa: PLC0415

    env.migrate()
    seed_fleet(1000)
    engine = env.engine()
    ingest("fleet", tables=["alarms"])
    seed_fleet(300)
    orphan = extract_table(engine, engine.catalog.table("alarms"))
    env.query("wh", "DELETE FROM fleet_control.extract_runs WHERE run_id = %s", (orphan.run_id,))
    with pytest.raises(IngestFailedError, match="belong to no run in extract_runs"):
        ingest("fleet", tables=["alarms"])

    # The fix as written: the named parts to rejected/ (an `aws s3 mv`), then a backfill.
    for key in env.location_keys("fleet", "exports", "alarms"):
        name = key.rsplit("/", 1)[-1]
        engine.location.storage.move(key, f"{rejected_prefix(engine.location, 'fleet', 'alarms')}/{name}")
    fixed = ingest("fleet", tables=["alarms"], backfill_from=orphan.lower)

    assert {t.table: t.status for t in fixed.tables} == {"alarms": "loaded"}
    source = env.query("source", "SELECT count(*) FROM public.alarms")
    assert env.query("wh", "SELECT count(*) FROM fleet_bronze.alarms") == source
    assert env.location_keys("fleet", "exports") == []
