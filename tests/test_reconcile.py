"""Delete reconciliation on real PostgreSQL: source keys streamed by COPY, diffed in SQL, bronze marked.

The fleet catalog opts `trips` in (`reconcile_deletes: true`); trips deleted in the
source are marked in bronze (`_dwh_deleted_at`), never deleted, counted in the run
log, and unmarked if they come back. The OSM-notes star schema's side is in
tests/test_osm_notes_rebuild.py.
"""

from __future__ import annotations

import pytest

from dwh.ingest.engine import Engine
from dwh.ingest.reconcile import ReconcileError, reconcile_table
from dwh.operations.verify import verify
from flows.ingest import ingest
from tests.conftest import Env, seed_fleet

pytestmark = pytest.mark.usefixtures("prefect_harness")

MARKED = "SELECT trip_id FROM fleet_bronze.trips WHERE _dwh_deleted_at IS NOT NULL ORDER BY 1"
RUNS = "SELECT table_name, status, source_keys, marked_deleted, restored FROM fleet_control.reconcile_runs ORDER BY reconcile_id"


def _trips(env: Env, db: str) -> int:
    schema = "public" if db == "source" else "fleet_bronze"
    return int(env.query(db, f"SELECT count(*) FROM {schema}.trips")[0][0])  # type: ignore[arg-type]


def test_trips_deleted_in_the_source_are_marked_in_bronze_never_deleted_and_counted(env: Env) -> None:
    env.migrate()
    seed_fleet(2000)
    first = ingest("fleet")
    loaded = _trips(env, "wh")
    assert loaded == _trips(env, "source") > 10
    assert env.query("wh", MARKED) == []
    (lowest, highest), *_ = env.query("source", "SELECT min(trip_id), max(trip_id) FROM public.trips")
    env.query("source", f"DELETE FROM public.trips WHERE trip_id IN ({lowest}, {highest})")

    second = ingest("fleet")

    assert env.query("wh", MARKED) == [(lowest,), (highest,)]
    assert _trips(env, "wh") == loaded  # the audit trail holds: nothing deleted
    runs = env.query("wh", RUNS)
    assert runs == [("trips", "succeeded", loaded, 0, 0), ("trips", "succeeded", loaded - 2, 2, 0)]
    assert {t.table: t.rows_deleted for t in second.tables}["trips"] == 2
    assert {t.table: t.rows_deleted for t in first.tables}["trips"] == 0
    parity = [
        g for g in verify(Engine.from_settings("fleet")) if g.gate == "row parity" and g.table == "trips"
    ]
    assert [(g.ok, g.detail) for g in parity] == [
        (True, f"source {loaded - 2:,} / bronze {loaded - 2:,} (exact up to the watermark)")
    ]  # the marked rows are not counted as bronze rows
    assert env.query(
        "wh", "SELECT count(*) FROM fleet_control.reconcile_runs WHERE table_name <> 'trips'"
    ) == [(0,)]  # only the tables that opted in


def test_the_diff_runs_in_key_range_chunks_and_a_key_that_comes_back_is_unmarked(env: Env) -> None:
    env.migrate()
    seed_fleet(2000)
    ingest("fleet", tables=["trips"])
    engine = Engine.from_settings("fleet")
    spec = engine.catalog.table("trips").model_copy(update={"reconcile_chunk_keys": 3})
    (lowest, highest, total), *_ = env.query(
        "source", "SELECT min(trip_id), max(trip_id), count(*) FROM public.trips"
    )
    env.query(
        "source", "CREATE TABLE public.trips_kept AS SELECT * FROM public.trips WHERE mod(trip_id, 4) = 0"
    )
    env.query("source", "DELETE FROM public.trips WHERE mod(trip_id, 4) = 0")
    gone = int(env.query("source", "SELECT count(*) FROM public.trips_kept")[0][0])  # type: ignore[arg-type]

    result = reconcile_table(engine, spec)

    assert result.chunks == (highest - lowest) // 3 + 1 > 1
    assert (result.source_keys, result.marked_deleted, result.restored) == (total - gone, gone, 0)
    assert env.query("wh", "SELECT count(*) FROM fleet_bronze.trips WHERE _dwh_deleted_at IS NOT NULL") == [
        (gone,)
    ]
    assert env.query(
        "wh", "SELECT bool_and(mod(trip_id, 4) = 0) FROM fleet_bronze.trips WHERE _dwh_deleted_at IS NOT NULL"
    ) == [(True,)]
    env.query("source", "INSERT INTO public.trips SELECT * FROM public.trips_kept")

    again = reconcile_table(engine, spec)

    assert (again.marked_deleted, again.restored) == (0, gone)
    assert env.query("wh", MARKED) == []


def test_a_table_without_the_deleted_at_column_fails_naming_it_and_is_recorded(env: Env) -> None:
    env.migrate()
    seed_fleet(500)
    ingest("fleet", tables=["alarms"])
    engine = Engine.from_settings("fleet")
    spec = engine.catalog.table("alarms").model_copy(update={"reconcile_deletes": True})
    env.query(
        "source", "DELETE FROM public.alarms WHERE alarm_id = (SELECT min(alarm_id) FROM public.alarms)"
    )

    with pytest.raises(
        ReconcileError, match=r"fleet\.alarms: delete reconciliation failed: .*_dwh_deleted_at"
    ):
        reconcile_table(engine, spec)

    assert env.query("wh", "SELECT table_name, status FROM fleet_control.reconcile_runs") == [
        ("alarms", "failed")
    ]
