"""Scale-out: chains as flow runs on a pool's workers, a limit per source, split extracts.

The fault and acceptance tests of tests/test_ingest.py and tests/test_faults.py run in
both modes (`both_modes`, tests/fan_out.py); this file proves what only the fan-out
mode, the source limit and the catalog's `split:` do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect.client.schemas.objects import FlowRun

from dwh.core.catalog import CatalogError, parse_catalog
from dwh.core.settings import PROJECT_DIR, source_limit_name
from dwh.ingest.extract import extract_table
from dwh.ingest.parts import parse_part
from dwh.ingest.report import IngestFailedError
from dwh.ingest.split import KeyRange, key_ranges
from flows.ingest import ingest
from tests.conftest import PIPELINES_DIR, Env, seed_fleet
from tests.fan_out import DEPLOYMENT, FLOW, WORKERS

KEY = "device_id, gps_time"
TABLES = ("devices", "live_positions", "geofences", "position_history", "trips", "alarms")
SPLIT_ROWS = 6_000


def _digest(env: Env, db: str, table: str = "position_history", key: str = KEY) -> tuple[object, ...]:
    """Row count and a digest of the keys: equal on both sides = nothing lost or doubled."""
    schema = "public" if db == "source" else "fleet_bronze"
    row = env.query(
        db, f"SELECT count(*), md5(string_agg(({key})::text, ',' ORDER BY {key})) FROM {schema}.{table}"
    )
    return tuple(row[0])


def _split_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ranges: int = 4) -> None:
    """fleet with position_history split on device_id, in parts of 500 rows."""
    text = (PIPELINES_DIR / "fleet.yaml").read_text()
    anchor = "    key: [device_id, gps_time]\n"
    assert text.count(anchor) == 1
    text = text.replace(
        anchor, f"{anchor}    split: {{column: device_id, ranges: {ranges}}}\n    chunk_rows: 500\n"
    )
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir(exist_ok=True)
    (pipelines / "fleet.yaml").write_text(text)
    monkeypatch.setenv("DWH_PIPELINES_DIR", str(pipelines))


@pytest.fixture
def split_catalog(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    _split_catalog(tmp_path, monkeypatch)
    return env


class CountingSlot:
    """A stand-in for the source's concurrency slot that records how many are held at once."""

    def __init__(self, slots: int | None, *, fail_on_call: int | None = None) -> None:
        self._gate = threading.BoundedSemaphore(slots) if slots else None
        self._lock = threading.Lock()
        self._fail_on_call = fail_on_call
        self.calls = 0
        self.held = 0
        self.most = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            self.calls += 1
            if self.calls == self._fail_on_call:
                msg = "range refused on purpose"
                raise RuntimeError(msg)
        if self._gate:
            self._gate.acquire()
        try:
            with self._lock:
                self.held += 1
                self.most = max(self.most, self.held)
            time.sleep(0.3)  # every range reaches its COPY before the first ends
            yield
        finally:
            with self._lock:
                self.held -= 1
            if self._gate:
                self._gate.release()


# --- catalog and naming (no service) ---------------------------------------------------------


def _catalog_with(entry: str) -> str:
    return f"pipeline: fleet\ntables:\n  position_history:\n{entry}"


def test_split_of_a_merge_table_is_refused_naming_table_line_and_field() -> None:
    raw = _catalog_with(
        "    mode: merge\n    watermark: updated_at\n    key: [device_id]\n    split: {column: device_id}\n"
    )
    with pytest.raises(CatalogError) as caught:
        parse_catalog(raw, Path("fleet.yaml"))
    message = str(caught.value)
    assert "table 'position_history', line 3" in message
    assert "split needs mode append (got merge)" in message


def test_split_column_outside_the_key_is_refused_because_a_null_would_fall_in_no_range() -> None:
    raw = _catalog_with(
        "    mode: append\n    watermark: recorded_at\n    key: [device_id, gps_time]\n"
        "    split: {column: speed, ranges: 8}\n"
    )
    with pytest.raises(CatalogError, match=r"split.column 'speed' must be a column of the key"):
        parse_catalog(raw, Path("fleet.yaml"))
    one_range = raw.replace("column: speed, ranges: 8", "column: device_id, ranges: 1")
    with pytest.raises(CatalogError, match=r"field split.ranges: Input should be greater than or equal to 2"):
        parse_catalog(one_range, Path("fleet.yaml"))


@pytest.mark.parametrize(("low", "high", "count"), [(1, 100, 4), (-7, 13, 3), (5, 6, 8), (42, 42, 4)])
def test_key_ranges_are_disjoint_and_cover_every_value_once(low: int, high: int, count: int) -> None:
    ranges = key_ranges(low, high, count)
    assert 1 <= len(ranges) <= count
    covered = [v for r in ranges for v in range(r.first, r.stop)]
    assert covered == list(range(low, high + 1))
    assert key_ranges(1, 100, 4) == [KeyRange(1, 26), KeyRange(26, 51), KeyRange(51, 76), KeyRange(76, 101)]


def test_source_limit_is_named_by_host_port_and_database_never_by_role_or_password() -> None:
    name = source_limit_name("host=db.internal port=6432 dbname=tracking user=reader password=s3cr3t")
    assert name == "dwh-source-db.internal-6432-tracking"
    assert name == source_limit_name("host=db.internal port=6432 dbname=tracking user=other password=x")
    assert (
        source_limit_name("host=/var/run/postgresql dbname=app") == "dwh-source-_var_run_postgresql-5432-app"
    )


# --- split extracts ------------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_split_table_is_read_as_parallel_ranges_into_one_run_and_loads_exactly_once(
    split_catalog: Env,
) -> None:
    env = split_catalog
    env.migrate()
    seed_fleet(SPLIT_ROWS)
    engine = env.engine()
    slot = CountingSlot(None)

    extracted = extract_table(engine, engine.catalog.table("position_history"), source_slot=slot)

    assert slot.calls == 1 + 4  # the span's min/max, then one slot per range
    assert slot.most > 1, "the ranges were read one after another"
    assert extracted.rows == _digest(env, "source")[0]
    keys = env.location_keys("fleet", "exports", "position_history")
    parts = sorted(p for p in (parse_part(k.rsplit("/", 1)[-1]) for k in keys) if p)
    assert len(parts) == len(keys) == extracted.parts > 4
    assert {p.run_id for p in parts} == {extracted.run_id}
    assert [p.part for p in parts] == list(range(1, len(parts) + 1))

    summary = ingest("fleet", tables=["position_history"])

    assert [(t.status, t.rows_loaded) for t in summary.tables] == [("loaded", extracted.rows)]
    assert _digest(env, "wh") == _digest(env, "source")
    runs = env.query("wh", "SELECT status, rows_extracted, rows_loaded FROM fleet_control.extract_runs")
    assert sorted(runs) == [("loaded", 0, 0), ("loaded", extracted.rows, extracted.rows)]


def test_split_ranges_take_one_source_slot_each_and_wait_when_none_is_free(split_catalog: Env) -> None:
    env = split_catalog
    env.migrate()
    seed_fleet(SPLIT_ROWS)
    engine = env.engine()
    slot = CountingSlot(1)

    extracted = extract_table(engine, engine.catalog.table("position_history"), source_slot=slot)

    assert (slot.calls, slot.most) == (1 + 4, 1)
    assert extracted.rows == _digest(env, "source")[0]


@pytest.mark.usefixtures("prefect_harness")
def test_a_failed_range_fails_the_run_keeps_the_watermark_and_the_next_run_loads_once(
    split_catalog: Env,
) -> None:
    env = split_catalog
    env.migrate()
    seed_fleet(SPLIT_ROWS)
    engine = env.engine()

    with pytest.raises(RuntimeError, match="range refused on purpose"):
        extract_table(
            engine, engine.catalog.table("position_history"), source_slot=CountingSlot(None, fail_on_call=4)
        )

    ((failed, status, error),) = env.query(
        "wh", "SELECT run_id, status, error_message FROM fleet_control.extract_runs"
    )
    assert status == "failed"
    assert "range refused on purpose" in str(error)
    published = env.location_keys("fleet", "exports", "position_history")
    assert published, "the other ranges published nothing: the fault proves nothing"
    watermark = env.query(
        "wh",
        "SELECT last_extracted_at FROM fleet_control.extract_watermarks"
        " WHERE table_name = 'position_history'",
    )[0][0]
    assert watermark == datetime(2000, 1, 1, tzinfo=UTC)

    after = ingest("fleet", tables=["position_history"])

    assert [t.status for t in after.tables] == ["loaded"]
    assert _digest(env, "wh") == _digest(env, "source")
    assert {k.rsplit("/", 1)[-1] for k in env.location_keys("fleet", "rejected", "position_history")} == {
        k.rsplit("/", 1)[-1] for k in published
    }
    assert env.location_keys("fleet", "exports") == []
    statuses = env.query("wh", "SELECT run_id, status FROM fleet_control.extract_runs ORDER BY run_id")
    assert statuses[0] == (failed, "failed")
    assert statuses[-1][1] == "loaded"


@pytest.mark.usefixtures("prefect_harness")
def test_split_run_killed_between_upload_and_commit_loads_exactly_once_next_run(split_catalog: Env) -> None:
    from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

    env = split_catalog
    env.migrate()
    seed_fleet(SPLIT_ROWS)
    killed = subprocess.run(
        [sys.executable, "-m", "dwh", "run", "fleet", "--table", "position_history"],
        env={
            **os.environ,
            "DWH_FAILPOINTS": "load.before_commit",
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        },
        cwd=PROJECT_DIR,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    ((parts, status),) = env.query("wh", "SELECT parts, status FROM fleet_control.extract_runs")
    assert status == "uploaded"
    assert parts > 4  # type: ignore[operator]
    assert _digest(env, "wh")[0] == 0

    after = ingest("fleet", tables=["position_history"])

    assert [t.rows_loaded for t in after.tables] == [_digest(env, "source")[0]]
    assert _digest(env, "wh") == _digest(env, "source")
    assert env.location_keys("fleet", "exports") == []


# --- the source's global concurrency limit -------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_extracts_wait_while_the_source_limit_has_no_free_slot(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import get_client  # noqa: PLC0415
    from prefect.concurrency.sync import concurrency  # noqa: PLC0415

    from tasks.source_slots import ensure_source_limit  # noqa: PLC0415

    env.migrate()
    counts = seed_fleet(500)
    monkeypatch.setenv("DWH_SOURCE_EXTRACTS", "1")
    name = ensure_source_limit(env.engine())
    assert env.source_db in name
    assert "password" not in name
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(name).limit == 1

    outcome: list[object] = []
    with concurrency(name, occupy=1, strict=True):  # another extract holds the only slot
        run = threading.Thread(target=lambda: outcome.append(ingest("fleet", tables=["alarms"])))
        run.start()
        time.sleep(8)
        assert run.is_alive(), "the extract did not wait for the source's slot"
        assert env.query("wh", "SELECT status FROM fleet_control.extract_runs") == [("extracting",)]
        assert _digest(env, "wh", "alarms", "alarm_id")[0] == 0
    run.join(timeout=120)

    assert not run.is_alive()
    (summary,) = outcome
    assert [(t.status, t.rows_loaded) for t in summary.tables] == [("loaded", counts["alarms"])]
    assert _digest(env, "wh", "alarms", "alarm_id") == _digest(env, "source", "alarms", "alarm_id")


# --- fan-out on a process pool ----------------------------------------------------------------


def _chain_runs(since: datetime) -> list[FlowRun]:
    from prefect import get_client  # noqa: PLC0415
    from prefect.client.schemas.filters import (  # noqa: PLC0415
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterStartTime,
    )

    with get_client(sync_client=True) as client:
        return list(
            client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[DEPLOYMENT])),
                flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
            )
        )


@pytest.mark.parametrize("ingest_mode", ["fan-out"], indirect=True)
def test_fan_out_runs_each_chain_as_a_flow_run_of_the_deployment_on_the_workers(
    split_catalog: Env, ingest_mode: str
) -> None:
    env = split_catalog
    assert ingest_mode == "fan-out"
    assert os.environ["DWH_FAN_OUT"] == "true"
    env.migrate()
    counts = seed_fleet(SPLIT_ROWS)
    started = datetime.now(UTC)

    summary = ingest("fleet")

    assert {t.table: (t.status, t.rows_loaded) for t in summary.tables} == {
        t: ("loaded", counts[t]) for t in TABLES
    }
    assert _digest(env, "wh") == _digest(env, "source")
    runs = _chain_runs(started)
    assert sorted(r.name for r in runs) == sorted(f"ingest-fleet-{t.table}" for t in summary.tables)
    for run in runs:
        assert run.state.is_completed()
        assert run.parent_task_run_id is not None, "a chain's run is a subflow of the parent's task"
        assert run.infrastructure_pid, "the worker records the process that ran the chain"
        assert not run.infrastructure_pid.endswith(f":{os.getpid()}")
    # The pool scales out: the chains ran on both workers, as each labels the runs it takes.
    assert len({run.labels.get("prefect.worker.name") for run in runs} - {None}) == WORKERS
    # The split table's chain read its ranges on its worker: one run, several ranges' parts.
    ((parts,),) = env.query(
        "wh", "SELECT parts FROM fleet_control.extract_runs WHERE table_name = 'position_history'"
    )
    assert parts > 4  # type: ignore[operator]

    again = ingest("fleet")

    assert {t.rows_loaded for t in again.tables if t.mode != "snapshot"} == {0}
    assert _digest(env, "wh") == _digest(env, "source")


@pytest.mark.parametrize("ingest_mode", ["fan-out"], indirect=True)
@pytest.mark.usefixtures("ingest_mode")
def test_fan_out_chain_that_fails_on_its_worker_fails_its_table_with_its_own_error(env: Env) -> None:
    env.migrate()
    counts = seed_fleet(500)
    env.query("source", "ALTER TABLE public.alarms RENAME COLUMN message TO msg")

    with pytest.raises(IngestFailedError) as caught:
        ingest("fleet", tables=["alarms", "trips"])

    by_table = {t.table: t for t in caught.value.summary.tables}
    assert by_table["alarms"].status == "failed"
    assert "table fleet.alarms: bronze column 'message' has no source column" in (
        by_table["alarms"].error or ""
    )
    assert (by_table["trips"].status, by_table["trips"].rows_loaded) == ("loaded", counts["trips"])


def test_ingest_table_deployment_is_declared_in_prefect_yaml() -> None:
    import yaml  # noqa: PLC0415

    from dwh.core.settings import RunSettings  # noqa: PLC0415

    config = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text(encoding="utf-8"))
    (declared,) = [d for d in config["deployments"] if d["name"] == DEPLOYMENT]
    assert declared["entrypoint"] == "flows/ingest_table.py:ingest_table_flow"
    assert RunSettings().fan_out_deployment == f"{FLOW}/{DEPLOYMENT}"
    assert "concurrency_limit" not in declared, "a pool-wide limit of 1 would run the chains one at a time"
