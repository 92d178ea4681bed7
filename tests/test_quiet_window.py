"""A table with nothing new in its window is recorded without its extract and load subflows.

fleet's source indexes each watermark (`recorded_at`); a test that drops the index of
`alarms` and sets DWH_QUIET_PROBE_SCAN_MB below its size runs both paths side by side
in one ingest: the probe is taken for `trips` only.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import psycopg
import pytest

from dwh.ingest.extract import record_quiet_window
from dwh.ingest.report import IngestFailedError
from flows.ingest import ingest
from tests.conftest import Env, app_conninfo, seed_fleet

pytestmark = pytest.mark.usefixtures("prefect_harness")

UNINDEX_ALARMS = "DROP INDEX public.alarms_recorded_at_idx"
# A scan limit below the seeded alarms' heap (a few 8 kB pages): too big to probe unindexed.
BELOW_ALARMS = "0.001"


def _flow_run_names(since: datetime) -> set[str]:
    """Names of the flow runs started since `since` (tests run one at a time on the server)."""
    from prefect import get_client  # noqa: PLC0415
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since))
        )
    return {run.name for run in runs}


def _runs(env: Env, table: str) -> list[tuple[object, ...]]:
    """Each run of `table`: status, rows extracted and loaded, parts, lower and upper bound."""
    return env.query(
        "wh",
        "SELECT status, rows_extracted, rows_loaded, parts, lower_bound, upper_bound "
        "FROM fleet_control.extract_runs WHERE table_name = %s ORDER BY run_id",
        (table,),
    )


def test_quiet_indexed_table_is_recorded_without_subflows_and_its_next_rows_still_arrive(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.migrate()
    counts = seed_fleet(1000)
    env.query("source", UNINDEX_ALARMS)
    monkeypatch.setenv("DWH_QUIET_PROBE_SCAN_MB", BELOW_ALARMS)
    ingest("fleet", tables=["trips", "alarms"])
    first_upper = _runs(env, "trips")[-1][5]

    since = datetime.now(UTC)
    quiet = ingest("fleet", tables=["trips", "alarms"])

    names = _flow_run_names(since)
    assert not names & {"extract-trips", "load-trips"}, names
    assert {"extract-alarms", "load-alarms"} <= names  # no index, over the scan limit: no probe
    outcome = {t.table: t for t in quiet.tables}["trips"]
    assert (outcome.status, outcome.rows_extracted, outcome.rows_loaded) == ("loaded", 0, 0)
    # Recorded as extract and load record an empty window: loaded, the window moved on.
    status, extracted, loaded, parts, lower, upper = _runs(env, "trips")[-1]
    assert (status, extracted, loaded, parts) == ("loaded", 0, 0, 0)
    assert lower == first_upper
    assert upper > first_upper  # type: ignore[operator]
    assert env.watermark("trips") == upper
    assert env.location_keys("fleet", "exports", "trips") == []

    grown = seed_fleet(1400)
    assert grown["trips"] > counts["trips"]
    since = datetime.now(UTC)
    moved = ingest("fleet", tables=["trips"])

    assert {t.table: t.rows_loaded for t in moved.tables} == {"trips": grown["trips"] - counts["trips"]}
    assert {"extract-trips", "load-trips"} <= _flow_run_names(since)
    assert env.count("wh", "trips") == env.count("source", "trips")


def test_quiet_table_whose_source_column_was_renamed_still_fails_naming_it(env: Env) -> None:
    env.migrate()
    seed_fleet(1000)
    ingest("fleet", tables=["trips"])
    env.query("source", "ALTER TABLE public.trips RENAME COLUMN max_speed_kmh TO speed_max")

    with pytest.raises(IngestFailedError) as caught:
        ingest("fleet", tables=["trips"])

    (outcome,) = caught.value.summary.tables
    assert outcome.status == "failed"
    assert "table fleet.trips: bronze column 'max_speed_kmh' has no source column" in (outcome.error or "")
    logged = env.query("wh", "SELECT table_name, error_message FROM fleet_control.v_recent_failures")
    assert [(t, "bronze column 'max_speed_kmh'" in str(e)) for t, e in logged] == [("trips", True)]


def test_probe_answers_only_for_an_empty_incremental_window(env: Env) -> None:
    env.migrate()
    seed_fleet(1000)
    env.query("source", UNINDEX_ALARMS)
    engine = env.engine()
    with psycopg.connect(engine.warehouse_conninfo, autocommit=True) as warehouse:
        # A window with rows (trips; alarms, unindexed, scanned) and a snapshot: the extract decides.
        assert record_quiet_window(engine, engine.catalog.table("trips"), warehouse) is None
        assert record_quiet_window(engine, engine.catalog.table("devices"), warehouse) is None
        assert record_quiet_window(engine, engine.catalog.table("alarms"), warehouse) is None
        assert _runs(env, "trips") == []

        # Emptied, the window holds nothing: recorded. One new row: the extract decides again.
        with psycopg.connect(app_conninfo(), autocommit=True) as app:
            app.execute("DELETE FROM public.trips")
        assert record_quiet_window(engine, engine.catalog.table("trips"), warehouse) is not None
        assert [r[0] for r in _runs(env, "trips")] == ["loaded"]
        with psycopg.connect(app_conninfo(), autocommit=True) as app:
            app.execute(
                "INSERT INTO public.trips (device_id, start_time) SELECT min(device_id), now() FROM public.devices"
            )
        assert record_quiet_window(engine, engine.catalog.table("trips"), warehouse) is None
        assert len(_runs(env, "trips")) == 1

    # A source that cannot be reached is not the probe's failure: the extract retries it.
    unreachable = dataclasses.replace(engine, source_conninfo="host=127.0.0.1 port=1 connect_timeout=2")
    with psycopg.connect(engine.warehouse_conninfo, autocommit=True) as warehouse:
        assert record_quiet_window(unreachable, engine.catalog.table("trips"), warehouse) is None


def test_an_unindexed_table_is_probed_only_while_its_heap_is_within_the_scan_limit(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.migrate()
    seed_fleet(1000)
    env.query("source", UNINDEX_ALARMS)
    ingest("fleet", tables=["alarms"])
    (heap,) = env.query("source", "SELECT pg_relation_size('public.alarms')")[0]
    assert 0 < heap < 8 * 2**20  # type: ignore[operator]
    engine = env.engine()
    alarms = engine.catalog.table("alarms")
    with psycopg.connect(engine.warehouse_conninfo, autocommit=True) as warehouse:
        # Over the limit (or 0, indexed tables only): the probe does not scan; the extract decides.
        for limit in (BELOW_ALARMS, "0"):
            monkeypatch.setenv("DWH_QUIET_PROBE_SCAN_MB", limit)
            assert record_quiet_window(engine, alarms, warehouse) is None
        assert [r[0] for r in _runs(env, "alarms")] == ["loaded"]

        # Within the default 8 MB: scanned, found empty, recorded as an empty run.
        monkeypatch.delenv("DWH_QUIET_PROBE_SCAN_MB")
        quiet = record_quiet_window(engine, alarms, warehouse)
        assert quiet is not None
        assert quiet.rows == 0
        first, recorded = _runs(env, "alarms")
        assert recorded[:4] == ("loaded", 0, 0, 0)
        assert recorded[4] == first[5]  # the window starts where the loaded one ended
        assert env.watermark("alarms") == recorded[5]

    # A new alarm is in the next window: probed, not quiet; the ingest loads it.
    since = datetime.now(UTC)
    with psycopg.connect(app_conninfo(), autocommit=True) as app:
        app.execute(
            "INSERT INTO public.alarms (device_id, alarm_type, alarm_time) "
            "SELECT min(device_id), 'overspeed', now() FROM public.devices"
        )
    moved = ingest("fleet", tables=["alarms"])
    assert {t.table: t.rows_loaded for t in moved.tables} == {"alarms": 1}
    assert {"extract-alarms", "load-alarms"} <= _flow_run_names(since)
    assert env.count("wh", "alarms") == env.count("source", "alarms")


@pytest.mark.parametrize("ingest_mode", ["fan-out"], indirect=True)
@pytest.mark.usefixtures("ingest_mode")
def test_fan_out_parent_records_a_quiet_table_itself_and_sends_only_the_others_to_the_pool(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.migrate()
    seed_fleet(500)
    env.query("source", UNINDEX_ALARMS)
    monkeypatch.setenv("DWH_QUIET_PROBE_SCAN_MB", BELOW_ALARMS)
    tables = ["position_history", "trips", "alarms"]
    ingest("fleet", tables=tables)

    since = datetime.now(UTC)
    again = ingest("fleet", tables=tables)

    names = _flow_run_names(since)
    # Quiet and indexed: the parent recorded it, no process started on the pool.
    assert not {n for n in names if n.endswith("position_history")}, names
    # trips reconciles deletes, so its chain runs on the pool (and finds its window quiet
    # there); alarms has no index and is over the scan limit.
    assert {"ingest-fleet-trips", "ingest-fleet-alarms", "extract-alarms"} <= names
    assert "extract-trips" not in names
    assert {(t.table, t.status, t.rows_loaded) for t in again.tables} == {(t, "loaded", 0) for t in tables}
    assert _runs(env, "position_history")[-1][:4] == ("loaded", 0, 0, 0)
    assert env.count("wh", "position_history") == env.count("source", "position_history")
