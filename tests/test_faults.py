"""Fault matrix: real services fail at the worst moments; nothing is lost, nothing doubles.

Every test ends by comparing bronze with the source (row count plus a digest of the
natural keys: same count and same digest means no row lost and none duplicated) and
by reading the control tables, which must say what really happened.

| fault | proven by |
|---|---|
| a row committed late (transaction open across an extract) | test_ingest.py::test_row_committed_late_below_the_upper_bound_arrives_next_run |
| SIGKILL during extract | test_killed_during_extract_next_run_rejects_its_parts_and_loads_once |
| SIGKILL during load, before commit | test_ingest.py::test_killed_before_commit_commits_nothing_and_next_run_loads |
| SIGKILL after commit, before the move | test_ingest.py::test_killed_after_commit_before_move_next_run_only_moves |
| S3 server stopped during upload, then back | test_s3_server_killed_during_upload_then_back_next_run_loads_once |
| S3 unreachable mid-upload (parts already published) | test_s3_unreachable_mid_upload_next_run_rejects_published_parts_and_loads_once |
| S3 unreachable during the move, after commit | test_s3_unreachable_during_move_after_commit_next_run_only_moves |
| S3 lost mid-upload inside a run, back before the retry | test_s3_lost_mid_upload_inside_the_run_the_retry_loads_everything_once |
| warehouse stopped during load, then back | test_warehouse_stopped_during_load_parts_wait_in_exports_and_load_next_run |
| warehouse restarted mid-load inside a run, back before the retry | test_warehouse_restarted_mid_load_inside_the_run_the_retry_loads_once |
| source restarted mid-extract | test_source_restarted_mid_extract_the_retry_loads_everything_once |
| truncated part (mid-row, or at a row boundary) | test_truncated_part_fails_its_table_commits_nothing_and_names_the_file |
| malformed part | test_ingest.py::test_malformed_part_fails_its_table_with_file_and_line_while_others_load |
| two parent runs at the same time | test_two_parent_runs_at_once_the_second_skips_the_held_table_and_nothing_doubles |
| source drift: column renamed | test_ingest.py::test_renamed_source_column_fails_that_table_by_name_and_the_others_load |
| source drift: column added | test_column_added_in_the_source_is_ignored_because_bronze_columns_drive_the_extract |
| source drift: type changed | test_type_changed_in_the_source_fails_its_table_naming_file_line_and_column |
| orchestrator clock skewed by hours | test_orchestrator_clock_five_hours_ahead_never_moves_the_bounds |

Servers are only stopped on the private stack (tests/outages.py); S3 outages that must
keep the parts already uploaded cut the TCP path to moto instead of stopping it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError
from prefect.task_runners import ThreadPoolTaskRunner

from dwh.core.settings import PROJECT_DIR
from dwh.ingest.extract import extract_table
from dwh.ingest.load import load_pending
from dwh.ingest.parts import parse_part
from dwh.ingest.report import IngestFailedError
from dwh.ingest.storage import StorageError
from flows.ingest import ingest
from tests.conftest import Env, Stack, rows_loaded, seed_fleet
from tests.failpoints import Failpoints
from tests.fan_out import KILLED_EXIT, both_modes, dwh_run_fleet, workers_ready
from tests.outages import (
    TcpCut,
    endpoint_port,
    moto_kill,
    moto_start,
    postgres_restart,
    postgres_start,
    postgres_stop,
    small_parts_catalog,
    split_env,
)
from tests.waiting import in_background, wait_for

pytestmark = pytest.mark.usefixtures("prefect_harness")

KEYS = {
    "devices": "device_id",
    "live_positions": "device_id",
    "geofences": "geofence_id",
    "position_history": "device_id, gps_time",
    "trips": "trip_id",
    "alarms": "alarm_id",
}
# The streaming failpoint fires every 16,384 rows: seed enough positions to reach it,
# and cut parts small so several are published before it fires.
STREAMED_ROWS = 20_000
SMALL_PARTS = 2_000


def _keys(env: Env, db: str, table: str) -> tuple[object, ...]:
    """Row count and a digest of the natural keys: equal on both sides = nothing lost or doubled."""
    schema = "public" if db == "source" else "fleet_bronze"
    key = KEYS[table]
    row = env.query(
        db,
        f"SELECT count(*), md5(string_agg(({key})::text, ',' ORDER BY {key})) FROM {schema}.{table}",
    )
    return tuple(row[0])


def _assert_exactly_once(env: Env, table: str) -> None:
    source = _keys(env, "source", table)
    assert source[0] > 0
    assert _keys(env, "wh", table) == source, table


def _runs(env: Env, table: str) -> list[tuple[object, ...]]:
    return env.query(
        "wh",
        "SELECT run_id, status, rows_extracted, rows_loaded, coalesce(error_message, '')"
        " FROM fleet_control.extract_runs WHERE table_name = %s ORDER BY run_id",
        (table,),
    )


def _names(keys: list[str]) -> set[str]:
    return {k.rsplit("/", 1)[-1] for k in keys}


def _run_of(key: str) -> int:
    name = parse_part(key.rsplit("/", 1)[-1])
    assert name is not None, key
    return name.run_id


def _dwh_run(table: str, *, prefix: tuple[str, ...] = (), extra: dict[str, str] | None = None) -> int:
    """`dwh run fleet --table <table>`'s exit code: 0, or a kill's (KILLED_EXIT)."""
    done = dwh_run_fleet(table, prefix=prefix, extra=extra)
    if done.returncode not in {0, *KILLED_EXIT.values()}:
        pytest.fail(f"dwh run exited {done.returncode}:\n{done.stderr.decode()[-3000:]}")
    return done.returncode


# --- process killed --------------------------------------------------------------------


@both_modes
def test_killed_during_extract_next_run_rejects_its_parts_and_loads_once(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failpoints: Failpoints, ingest_mode: str
) -> None:
    small_parts_catalog(tmp_path, monkeypatch, SMALL_PARTS)
    env.migrate()
    seed_fleet(STREAMED_ROWS)
    failpoints.kill_at("extract.streaming")

    # In-process the `dwh run` process dies; in fan-out the chain's flow run on its worker.
    assert _dwh_run("position_history") == KILLED_EXIT[ingest_mode]
    assert failpoints.killed("extract.streaming")

    # Killed mid-stream: the run row still says 'extracting', some parts were published.
    ((killed, status, *_),) = _runs(env, "position_history")
    assert status == "extracting"
    published = env.location_keys("fleet", "exports", "position_history")
    assert published, "the kill came before any part was published: nothing to recover"
    assert {_run_of(k) for k in published} == {killed}
    assert _keys(env, "wh", "position_history")[0] == 0

    after = ingest("fleet", tables=["position_history"])

    assert rows_loaded(after) == {"position_history": STREAMED_ROWS}
    _assert_exactly_once(env, "position_history")
    runs = _runs(env, "position_history")
    assert [r[1] for r in runs] == ["failed", "loaded"]
    assert "abandoned: its extract never finished" in str(runs[0][4])
    assert runs[1][2:4] == (STREAMED_ROWS, STREAMED_ROWS)
    assert _names(env.location_keys("fleet", "rejected", "position_history")) == _names(published)
    assert env.location_keys("fleet", "exports") == []
    assert len(env.location_keys("fleet", "processed", "position_history")) == STREAMED_ROWS // SMALL_PARTS


# --- object storage unavailable ----------------------------------------------------------


@pytest.fixture
def s3_cut(env: Env, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> TcpCut:
    """The engine reaches the session's moto only through a path the test can cut."""
    assert env.storage_url.startswith("s3://")
    cut = TcpCut(endpoint_port(stack.env["AWS_ENDPOINT_URL"]))
    monkeypatch.setenv("AWS_ENDPOINT_URL", cut.url)
    # botocore would retry a refused connection for seconds; production keeps that.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    return cut


def _s3_keys(stack: Stack, env: Env, *parts: str) -> list[str]:
    """What really is in the bucket, read past the cut."""
    client = stack.s3_client()
    bucket, _, prefix = env.storage_url.removeprefix("s3://").partition("/")
    listed = client.list_objects_v2(Bucket=bucket, Prefix="/".join((prefix, *parts)) + "/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def _cut_after_the_first_part(stack: Stack, env: Env, s3_cut: TcpCut) -> Callable[[], None]:
    def cut() -> None:
        wait_for("a published part", lambda: bool(_s3_keys(stack, env, "fleet", "exports")), interval=0.1)
        s3_cut.cut()

    return cut


def _assert_the_retry_rejected_the_failed_attempt(env: Env, table: str, rows: int, *causes: str) -> None:
    """A failed extract then its retry, in one `ingest`: everything once, the attempt's parts rejected."""
    _assert_exactly_once(env, table)
    runs = _runs(env, table)
    assert [r[1] for r in runs] == ["failed", "loaded"]
    assert runs[1][2:4] == (rows, rows)
    assert f"extract of table fleet.{table} failed" in str(runs[0][4])
    assert any(cause in str(runs[0][4]) for cause in causes), runs[0][4]
    rejected = env.location_keys("fleet", "rejected", table)
    assert rejected
    assert {_run_of(k) for k in rejected} == {runs[0][0]}
    assert env.location_keys("fleet", "exports") == []


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
@both_modes
def test_s3_unreachable_mid_upload_next_run_rejects_published_parts_and_loads_once(
    env: Env,
    stack: Stack,
    s3_cut: TcpCut,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    failpoints: Failpoints,
) -> None:
    small_parts_catalog(tmp_path, monkeypatch, SMALL_PARTS)
    env.migrate()
    seed_fleet(STREAMED_ROWS)
    engine = env.engine()

    with (
        failpoints.paused_at("extract.streaming", _cut_after_the_first_part(stack, env, s3_cut)),
        pytest.raises((S3UploadFailedError, StorageError), match="upload") as caught,
    ):
        extract_table(engine, engine.catalog.table("position_history"))

    published = _s3_keys(stack, env, "fleet", "exports", "position_history")
    assert 0 < len(published) < STREAMED_ROWS // SMALL_PARTS
    ((run_id, status, _, _, error),) = _runs(env, "position_history")
    assert status == "failed"
    assert "extract of table fleet.position_history failed" in str(error)
    assert str(caught.value) in str(error)
    assert env.watermark("position_history") == datetime(2000, 1, 1, tzinfo=UTC)

    s3_cut.restore()
    after = ingest("fleet", tables=["position_history"])

    assert rows_loaded(after) == {"position_history": STREAMED_ROWS}
    _assert_exactly_once(env, "position_history")
    runs = _runs(env, "position_history")
    assert [r[1] for r in runs] == ["failed", "loaded"]
    assert runs[0][4] == error, "recovery must keep the failed run's own error"
    assert _names(env.location_keys("fleet", "rejected", "position_history")) == _names(published)
    assert env.location_keys("fleet", "exports") == []
    assert run_id not in {_run_of(k) for k in env.location_keys("fleet", "processed")}


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
@both_modes
def test_s3_lost_mid_upload_inside_the_run_the_retry_loads_everything_once(
    env: Env,
    stack: Stack,
    s3_cut: TcpCut,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    failpoints: Failpoints,
) -> None:
    """The outage strikes the extract inside `ingest` (on a worker in fan-out mode) and
    ends before the task's retry: that retry extracts again, and its load rejects the
    failed attempt's parts."""
    small_parts_catalog(tmp_path, monkeypatch, SMALL_PARTS)
    env.migrate()
    seed_fleet(STREAMED_ROWS)

    def restore_once_the_attempt_failed() -> None:
        def failed() -> bool:
            return [r[1] for r in _runs(env, "position_history")] == ["failed"]

        wait_for("the failed extract in the run log", failed, timeout=120, interval=0.1)
        s3_cut.restore()

    with (
        in_background("S3 restore", restore_once_the_attempt_failed),
        failpoints.paused_at("extract.streaming", _cut_after_the_first_part(stack, env, s3_cut)),
    ):
        summary = ingest("fleet", tables=["position_history"])

    assert rows_loaded(summary) == {"position_history": STREAMED_ROWS}
    _assert_the_retry_rejected_the_failed_attempt(env, "position_history", STREAMED_ROWS, "upload to s3://")


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
@both_modes
def test_s3_unreachable_during_move_after_commit_next_run_only_moves(
    env: Env, stack: Stack, s3_cut: TcpCut, failpoints: Failpoints
) -> None:
    env.migrate()
    counts = seed_fleet(1000)
    engine = env.engine()
    extract_table(engine, engine.catalog.table("alarms"))
    (part,) = _s3_keys(stack, env, "fleet", "exports", "alarms")

    with failpoints.paused_at("load.after_commit", s3_cut.cut), pytest.raises((BotoCoreError, StorageError)):
        load_pending(engine, engine.catalog.table("alarms"))

    # Committed before the outage: rows, watermark and run log; the part did not move.
    _assert_exactly_once(env, "alarms")
    assert [r[1] for r in _runs(env, "alarms")] == ["loaded"]
    assert _s3_keys(stack, env, "fleet", "exports", "alarms") == [part]
    assert _s3_keys(stack, env, "fleet", "processed", "alarms") == []

    s3_cut.restore()
    after = ingest("fleet", tables=["alarms"])

    assert rows_loaded(after) == {"alarms": 0}
    _assert_exactly_once(env, "alarms")
    assert _keys(env, "wh", "alarms")[0] == counts["alarms"]
    assert env.location_keys("fleet", "exports") == []
    assert _names(env.location_keys("fleet", "processed", "alarms")) == _names([part])
    runs = _runs(env, "alarms")
    assert [r[1] for r in runs] == ["loaded", "loaded"]
    assert runs[1][2:4] == (0, 0)


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
@both_modes
def test_s3_server_killed_during_upload_then_back_next_run_loads_once(
    env: Env, private_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", private_stack.env["AWS_ENDPOINT_URL"])
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    env.migrate()
    counts = seed_fleet(1000)
    engine = env.engine()

    moto_kill(private_stack)
    try:
        with pytest.raises((S3UploadFailedError, StorageError), match="upload") as caught:
            extract_table(engine, engine.catalog.table("trips"))
    finally:
        moto_start(private_stack)

    ((_, status, _, _, error),) = _runs(env, "trips")
    assert status == "failed"
    assert str(caught.value) in str(error)
    assert env.watermark("trips") == datetime(2000, 1, 1, tzinfo=UTC)

    after = ingest("fleet", tables=["trips"])

    assert rows_loaded(after) == {"trips": counts["trips"]}
    _assert_exactly_once(env, "trips")
    assert [r[1] for r in _runs(env, "trips")] == ["failed", "loaded"]
    assert env.location_keys("fleet", "exports") == []


# --- databases unavailable ---------------------------------------------------------------


@both_modes
def test_warehouse_stopped_during_load_parts_wait_in_exports_and_load_next_run(
    stack: Stack,
    private_stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failpoints: Failpoints,
) -> None:
    storage = f"file://{tmp_path / 'storage'}"
    with split_env(monkeypatch, storage, source=stack, warehouse=private_stack) as env:
        env.migrate()
        counts = seed_fleet(1000)
        engine = env.engine()
        extract_table(engine, engine.catalog.table("trips"))
        (part,) = env.location_keys("fleet", "exports", "trips")

        # The cluster stops inside the load transaction, after the rows went in.
        try:
            with (
                failpoints.paused_at("load.before_commit", lambda: postgres_stop(private_stack)),
                pytest.raises(psycopg.OperationalError),
            ):
                load_pending(engine, engine.catalog.table("trips"))
        finally:
            postgres_start(private_stack)

        assert env.location_keys("fleet", "exports", "trips") == [part]
        assert _keys(env, "wh", "trips")[0] == 0
        # The failed attempt could not be written (the warehouse was down): the run
        # truthfully still says 'uploaded', and the next run picks it up.
        assert [r[1] for r in _runs(env, "trips")] == ["uploaded"]

        after = ingest("fleet", tables=["trips"])

        assert rows_loaded(after) == {"trips": counts["trips"]}
        _assert_exactly_once(env, "trips")
        runs = _runs(env, "trips")
        assert [r[1] for r in runs] == ["loaded", "loaded"]
        assert runs[0][2:4] == (counts["trips"], counts["trips"])
        assert env.location_keys("fleet", "exports") == []
        assert _names(env.location_keys("fleet", "processed", "trips")) == _names([part])


@both_modes
def test_warehouse_restarted_mid_load_inside_the_run_the_retry_loads_once(
    stack: Stack,
    private_stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failpoints: Failpoints,
) -> None:
    """The warehouse stops inside `ingest`'s load transaction (on a worker in fan-out
    mode) and is back before the task's retry, which loads the run once; the table lock's
    connection died with the server, and the chain still ends cleanly."""
    storage = f"file://{tmp_path / 'storage'}"
    with split_env(monkeypatch, storage, source=stack, warehouse=private_stack) as env:
        env.migrate()
        counts = seed_fleet(1000)

        def start_after_the_stop() -> None:
            stopped = partial(failpoints.resumed, "load.before_commit")  # once the stop returned
            wait_for("the warehouse stopped", stopped, timeout=120, interval=0.1)
            postgres_start(private_stack)

        with (
            in_background("warehouse start", start_after_the_stop),
            failpoints.paused_at("load.before_commit", lambda: postgres_stop(private_stack)),
        ):
            summary = ingest("fleet", tables=["trips"])

        assert rows_loaded(summary) == {"trips": counts["trips"]}
        _assert_exactly_once(env, "trips")
        runs = _runs(env, "trips")
        # The failed attempt could not be recorded (the warehouse was down): one run, loaded.
        assert [r[1] for r in runs] == ["loaded"]
        assert runs[0][2:4] == (counts["trips"], counts["trips"])
        assert env.location_keys("fleet", "exports") == []
        assert len(env.location_keys("fleet", "processed", "trips")) == 1


@both_modes
def test_source_restarted_mid_extract_the_retry_loads_everything_once(
    stack: Stack,
    private_stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failpoints: Failpoints,
) -> None:
    # ~19 MB of CSV: more than the socket buffers can hold, so when the source goes
    # away at row 16,384 the rest of the COPY is really lost in transit.
    rows, chunk_rows = 100_000, 10_000
    small_parts_catalog(tmp_path, monkeypatch, chunk_rows)
    storage = f"file://{tmp_path / 'storage'}"
    with split_env(monkeypatch, storage, source=private_stack, warehouse=stack) as env:
        env.migrate()
        seed_fleet(rows)

        def restart_after_the_first_part() -> None:
            wait_for("a published part", lambda: bool(env.location_keys("fleet", "exports")), interval=0.1)
            postgres_restart(private_stack)

        # The extract task fails on the dropped connection, retries (transient) and succeeds:
        # on a thread here, or in the chain's flow run on a worker.
        with failpoints.paused_at("extract.streaming", restart_after_the_first_part):
            summary = ingest("fleet", tables=["position_history"])

        assert rows_loaded(summary) == {"position_history": rows}
        _assert_the_retry_rejected_the_failed_attempt(
            env, "position_history", rows, "administrator command", "closed"
        )


# --- bad parts -----------------------------------------------------------------------------


@pytest.mark.parametrize("cut", ["mid-row", "row-boundary"])
@both_modes
def test_truncated_part_fails_its_table_commits_nothing_and_names_the_file(env: Env, cut: str) -> None:
    env.migrate()
    counts = seed_fleet(1000)
    engine = env.engine()
    extracted = extract_table(engine, engine.catalog.table("trips"))
    (key,) = env.location_keys("fleet", "exports", "trips")
    path = Path(env.storage_url.removeprefix("file://")) / key
    lines = path.read_bytes().rstrip(b"\n").split(b"\n")
    assert len(lines) == counts["trips"] + 1  # header; trips hold no multi-line text
    if cut == "mid-row":
        # The last row loses everything after its third field, as a cut-off upload would.
        last = lines[-1]
        third_comma = [i for i, c in enumerate(last) if c == ord(",")][2]
        path.write_bytes(b"\n".join([*lines[:-1], last[: third_comma + 1]]))
        expected = [f"line {len(lines)}", 'missing data for column "distance_km"']
    else:
        # Five whole rows gone: every line still parses, only the count can tell.
        path.write_bytes(b"\n".join(lines[:-5]) + b"\n")
        expected = [f"extracted {counts['trips']} rows but its parts hold {counts['trips'] - 5}"]

    with pytest.raises(IngestFailedError) as caught:
        ingest("fleet", tables=["trips"])

    (outcome,) = caught.value.summary.tables
    assert outcome.status == "failed"
    ((run_id, status, _, rows_loaded, error),) = _runs(env, "trips")
    assert (run_id, status, rows_loaded) == (extracted.run_id, "failed", None)
    for text in (str(outcome.error), str(error)):
        assert key.rsplit("/", 1)[-1] in text
        assert "table fleet.trips" in text
        for fragment in expected:
            assert fragment in text
    assert _keys(env, "wh", "trips")[0] == 0
    assert env.watermark("trips") == datetime(2000, 1, 1, tzinfo=UTC)
    assert env.location_keys("fleet", "exports", "trips") == [key]


# --- concurrency ---------------------------------------------------------------------------


@both_modes
def test_two_parent_runs_at_once_the_second_skips_the_held_table_and_nothing_doubles(env: Env) -> None:
    from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

    env.migrate()
    counts = seed_fleet(1000)
    with psycopg.connect(env.warehouse_admin) as blocker:
        # Hold run A inside its trips load (it has the table lock by then) while B starts.
        blocker.execute("LOCK TABLE fleet_bronze.trips IN ACCESS EXCLUSIVE MODE")
        workers_ready()  # in the fan-out mode, run A's chain runs on the pool
        first = subprocess.Popen(
            [sys.executable, "-m", "dwh", "run", "fleet", "--table", "trips"],
            env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())},
            cwd=PROJECT_DIR,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(
                "run A to wait inside its trips load",
                lambda: (
                    env.query(
                        "wh",
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND application_name = 'dwh-fleet' AND wait_event_type = 'Lock'",
                    )
                    == [(1,)]
                ),
                timeout=240,
                interval=0.1,
            )

            second = ingest("fleet", tables=["trips", "alarms"])

            by_table = {t.table: t for t in second.tables}
            assert by_table["trips"].status == "skipped"
            assert by_table["trips"].error == "locked by another run"
            assert (by_table["alarms"].status, by_table["alarms"].rows_loaded) == ("loaded", counts["alarms"])
            # B touched nothing of trips: A's run is the only one, still in flight.
            assert [r[1] for r in _runs(env, "trips")] == ["uploaded"]
        finally:
            blocker.rollback()
            _, stderr = first.communicate(timeout=240)
    assert first.returncode == 0, stderr.decode()[-3000:]

    _assert_exactly_once(env, "trips")
    _assert_exactly_once(env, "alarms")
    assert [r[1:4] for r in _runs(env, "trips")] == [("loaded", counts["trips"], counts["trips"])]
    assert [r[1:4] for r in _runs(env, "alarms")] == [("loaded", counts["alarms"], counts["alarms"])]

    third = ingest("fleet", tables=["trips", "alarms"])

    assert rows_loaded(third) == {"trips": 0, "alarms": 0}
    _assert_exactly_once(env, "trips")
    _assert_exactly_once(env, "alarms")


# --- source drift ----------------------------------------------------------------------------


@both_modes
def test_column_added_in_the_source_is_ignored_because_bronze_columns_drive_the_extract(env: Env) -> None:
    env.migrate()
    counts = seed_fleet(1000)
    env.query("source", "ALTER TABLE public.alarms ADD COLUMN severity smallint NOT NULL DEFAULT 3")

    summary = ingest("fleet", tables=["alarms"])

    assert rows_loaded(summary) == {"alarms": counts["alarms"]}
    _assert_exactly_once(env, "alarms")
    bronze = {
        r[0]
        for r in env.query(
            "wh",
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'fleet_bronze' AND table_name = 'alarms'",
        )
    }
    assert "severity" not in bronze
    (part,) = env.location_keys("fleet", "processed", "alarms")
    header = (Path(env.storage_url.removeprefix("file://")) / part).read_bytes().split(b"\n", 1)[0]
    assert b"severity" not in header
    assert set(header.decode().split(",")) == bronze - {"_dwh_loaded_at"}


@both_modes
def test_type_changed_in_the_source_fails_its_table_naming_file_line_and_column(env: Env) -> None:
    env.migrate()
    counts = seed_fleet(1000)
    env.query("source", "ALTER TABLE public.trips ALTER COLUMN max_speed_kmh TYPE text")
    env.query("source", "UPDATE public.trips SET max_speed_kmh = 'fast' WHERE trip_id = 5")

    with pytest.raises(IngestFailedError) as caught:
        ingest("fleet", tables=["trips", "alarms"])

    by_table = {t.table: t for t in caught.value.summary.tables}
    assert by_table["alarms"].status == "loaded"
    assert by_table["trips"].status == "failed"
    (key,) = env.location_keys("fleet", "exports", "trips")
    lines = (Path(env.storage_url.removeprefix("file://")) / key).read_bytes().split(b"\n")
    line = 1 + next(i for i, text in enumerate(lines) if b",fast," in text)
    ((_, status, rows_extracted, _, error),) = _runs(env, "trips")
    assert (status, rows_extracted) == ("failed", counts["trips"])
    for text in (str(by_table["trips"].error), str(error)):
        assert key.rsplit("/", 1)[-1] in text
        assert "invalid input syntax for type numeric" in text
        assert f"line {line}, column max_speed_kmh" in text
        assert "fast" not in text, "the row's value stays out of errors, logs and the run log"
    assert _keys(env, "wh", "trips")[0] == 0
    assert env.watermark("trips") == datetime(2000, 1, 1, tzinfo=UTC)
    _assert_exactly_once(env, "alarms")


# --- clocks ------------------------------------------------------------------------------------


# Default mode only: the skew is the orchestrating process's; in the fan-out mode each
# chain runs in a worker's process, whose clock this test cannot move.
@pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime is not installed (scripts/bootstrap)")
def test_orchestrator_clock_five_hours_ahead_never_moves_the_bounds(env: Env) -> None:
    env.migrate()
    counts = seed_fleet(1000)

    def source_clock() -> datetime:
        return env.query("source", "SELECT clock_timestamp()")[0][0]  # type: ignore[return-value]

    skewed = ("faketime", "-f", "+5h")  # the whole process: Python, Prefect, libpq
    extra = {"FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    probe = [*skewed, sys.executable, "-c", "import time; print(time.time())"]
    ahead = float(subprocess.check_output(probe, env={**os.environ, **extra})) - time.time()
    assert 4.9 * 3600 < ahead < 5.1 * 3600, "faketime does not skew this Python"

    before = source_clock()
    assert _dwh_run("alarms", prefix=skewed, extra=extra) == 0
    after = source_clock()

    (upper,) = env.query("wh", "SELECT upper_bound FROM fleet_control.extract_runs")[0]
    assert before <= upper <= after  # type: ignore[operator]
    assert env.watermark("alarms") == upper
    (part,) = env.location_keys("fleet", "processed", "alarms")
    stamp = upper.astimezone(ZoneInfo("Africa/Nairobi")).strftime("%Y%m%d_%H%M")  # type: ignore[attr-defined]
    assert part.rsplit("/", 1)[-1].startswith(stamp)
    _assert_exactly_once(env, "alarms")

    # Rows stamped by the source after that run arrive next run: a watermark taken
    # from the skewed clock (5 h ahead) would have skipped them for five hours, or for
    # good once the clock was fixed.
    grown = seed_fleet(1000)
    assert grown["alarms"] > counts["alarms"]
    next_run = ingest("fleet", tables=["alarms"])

    assert rows_loaded(next_run) == {"alarms": grown["alarms"] - counts["alarms"]}
    _assert_exactly_once(env, "alarms")


# Idle warehouse sessions of the flows' role that hold no table lock: between chains,
# the ones a run keeps for its next chain.
_TERMINATE_HANDED_ON = """
SELECT count(pg_terminate_backend(a.pid, 5000)) FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.usename = %s AND a.state = 'idle'
  AND a.pid <> pg_backend_pid()
  AND NOT EXISTS (SELECT FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory')
"""


def test_sessions_the_server_ended_between_chains_are_not_handed_on_and_every_table_loads(
    env: Env, failpoints: Failpoints, caplog: pytest.LogCaptureFixture
) -> None:
    """The warehouse ends the sessions a run keeps between chains; the later chains connect anew."""
    env.migrate()
    counts = seed_fleet(1000)
    owner = env.catalog().owner_role
    ended: list[int] = []

    def end_handed_on_sessions() -> None:
        with psycopg.connect(env.warehouse_admin, autocommit=True) as admin:
            row = admin.execute(_TERMINATE_HANDED_ON, (owner,)).fetchone()
        ended.append(int(row[0]) if row else 0)

    # One chain at a time, so every idle session without a table lock is one waiting for
    # the next chain: the first table to commit its load has handed its extract's on.
    one_at_a_time = ingest.with_options(task_runner=ThreadPoolTaskRunner(max_workers=1))
    with failpoints.paused_at("load.after_commit", end_handed_on_sessions):
        summary = one_at_a_time("fleet")

    assert ended[0] >= 1, "a session was waiting for the next chain"
    assert [t.status for t in summary.tables] == ["loaded"] * len(counts)
    for table in counts:
        _assert_exactly_once(env, table)
    runs = env.query("wh", "SELECT table_name, status FROM fleet_control.extract_runs ORDER BY run_id")
    assert sorted(runs) == sorted((table, "loaded") for table in counts)
    # No chain met an ended session: a dead one handed on fails the extract's first
    # statement, and Prefect logs the attempt's failure before its retry loads the table.
    assert any(r.name == "prefect.task_runs" for r in caplog.records), "the runs' logs are captured"
    assert "terminating connection" not in caplog.text
