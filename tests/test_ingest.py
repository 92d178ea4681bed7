"""The ingest engine end to end: real PostGIS, local storage and the S3 API over HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from dwh.ingest.extract import extract_table
from dwh.ingest.report import IngestFailedError
from flows.ingest import ingest
from tests.conftest import PIPELINES_DIR, Env, app_conninfo, rows_loaded, seed_fleet
from tests.failpoints import Failpoints
from tests.fan_out import KILLED_EXIT, both_modes, dwh_run_fleet, each_mode_and_storage

pytestmark = pytest.mark.usefixtures("prefect_harness")

INCREMENTAL = ("position_history", "trips", "alarms")
SNAPSHOT = ("devices", "live_positions", "geofences")
GEOMETRY = {
    "position_history": ("(device_id, gps_time)", ("geom",)),
    "live_positions": ("device_id", ("geom",)),
    "geofences": ("geofence_id", ("area",)),
    "trips": ("trip_id", ("start_geom", "end_geom")),
    "alarms": ("alarm_id", ("geom",)),
}
TEXT = {
    "devices": ("device_id", ("name", "notes", "driver_name", "model", "sim_number")),
    "alarms": ("alarm_id", ("message", "alarm_type")),
    "position_history": ("(device_id, gps_time)", ("raw_payload",)),
    "geofences": ("geofence_id", ("name", "kind")),
}


def _fingerprint(env: Env, db: str, table: str, key: str, expressions: list[str]) -> tuple[object, ...]:
    """An order-stable digest of the given expressions over the whole table."""
    schema = "public" if db == "source" else "fleet_bronze"
    cells = ", ".join(f"coalesce(quote_literal({e}), 'NULL')" for e in expressions)
    row = env.query(
        db,
        f"SELECT md5(string_agg(concat_ws('|', {cells}), E'\\n' ORDER BY {key})),"
        f" count(*) FILTER (WHERE {expressions[0]} IS NULL) FROM {schema}.{table}",
    )
    return tuple(row[0])


def _loaded_events(resource_id: str, since: datetime) -> list[dict[str, object]]:
    """`dwh.table.loaded` events for a table since `since` (the server is shared; delivery is async)."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.events.filters import (  # noqa: PLC0415
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventResourceFilter,
    )

    wanted = EventFilter(
        occurred=EventOccurredFilter(since=since),
        event=EventNameFilter(name=["dwh.table.loaded"]),
        resource=EventResourceFilter(id=[resource_id]),
    )
    deadline = time.monotonic() + 20
    with get_client(sync_client=True) as client:
        while True:
            events = client.read_events(filter=wanted, limit=50).events  # the server caps at 50
            if events or time.monotonic() > deadline:
                return [e.payload for e in events]
            time.sleep(0.5)


def _artifact_markdown(key: str) -> str:
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        (artifact,) = client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    return str(artifact.data)


def _assert_parity(env: Env, tables: tuple[str, ...] = (*SNAPSHOT, *INCREMENTAL)) -> None:
    for table in tables:
        assert env.count("wh", table) == env.count("source", table), table
    for table, (key, columns) in GEOMETRY.items():
        if table not in tables:
            continue
        exprs = [f"ST_AsEWKT({c})" for c in columns]
        assert _fingerprint(env, "wh", table, key, exprs) == _fingerprint(env, "source", table, key, exprs), (
            table
        )
    if "trips" not in tables:
        return
    # distance_m in the source arrives as distance_km in bronze (catalog expression).
    src = env.query("source", "SELECT sum(distance_m) FROM public.trips")[0][0]
    dst = env.query("wh", "SELECT sum(distance_km) FROM fleet_bronze.trips")[0][0]
    assert dst * 1000 == src  # type: ignore[operator]


@each_mode_and_storage
def test_first_run_backfills_everything_and_second_run_moves_nothing(env: Env) -> None:
    env.migrate()
    counts = seed_fleet(3000)
    started = datetime.now(UTC)

    first = ingest("fleet")

    assert {t.status for t in first.tables} == {"loaded"}
    assert rows_loaded(first) == {t: counts[t] for t in (*SNAPSHOT, *INCREMENTAL)}
    _assert_parity(env)
    nulls = env.query("wh", "SELECT count(*) FROM fleet_bronze.position_history WHERE geom IS NULL")
    assert nulls[0][0] > 0
    srids = env.query(
        "wh", "SELECT DISTINCT ST_SRID(geom) FROM fleet_bronze.position_history WHERE geom IS NOT NULL"
    )
    assert srids == [(4326,)]
    assert env.location_keys("fleet", "exports") == []
    processed = env.location_keys("fleet", "processed")
    assert len(processed) == 6
    runs = env.query("wh", "SELECT status, count(*) FROM fleet_control.extract_runs GROUP BY 1")
    assert runs == [("loaded", 6)]
    markdown = _artifact_markdown("ingest-fleet")
    assert f"| position_history | append | loaded | {counts['position_history']:,} |" in markdown
    payloads = _loaded_events("dwh.table.fleet.position_history", started)
    assert {"rows": counts["position_history"]}.items() <= payloads[0].items()

    second = ingest("fleet")

    assert {t: rows_loaded(second)[t] for t in INCREMENTAL} == dict.fromkeys(INCREMENTAL, 0)
    assert all(not t.files for t in second.tables if t.table in INCREMENTAL)
    assert len(env.location_keys("fleet", "processed")) == 6 + len(SNAPSHOT)
    assert env.location_keys("fleet", "exports") == []
    _assert_parity(env)


def test_text_round_trips_byte_exact_with_empty_string_distinct_from_null(env: Env) -> None:
    env.migrate()
    seed_fleet(1000)
    ingest("fleet")
    for table, (key, columns) in TEXT.items():
        for column in columns:
            source = _fingerprint(env, "source", table, key, [column])
            bronze = _fingerprint(env, "wh", table, key, [column])
            assert bronze == source, f"{table}.{column}"
    empties = env.query(
        "wh",
        "SELECT count(*) FILTER (WHERE notes = ''), count(*) FILTER (WHERE notes IS NULL) FROM fleet_bronze.devices",
    )
    assert empties[0][0] > 0
    assert empties[0][1] > 0


@both_modes
def test_row_committed_late_below_the_upper_bound_arrives_next_run(env: Env) -> None:
    env.migrate()
    seed_fleet(1000)
    ingest("fleet", tables=["position_history"])
    late = psycopg.connect(app_conninfo())  # type: ignore[call-arg]
    try:
        # recorded_at defaults to now(): the start of this still-open transaction.
        late.execute(
            "INSERT INTO public.position_history (device_id, gps_time, raw_payload)"
            " VALUES (1, '1999-01-01T00:00:00Z', 'late')"
        )
        run = ingest("fleet", tables=["position_history"])
        assert rows_loaded(run) == {"position_history": 0}
        late.commit()
    finally:
        late.close()
    recorded = env.query(
        "source", "SELECT recorded_at FROM public.position_history WHERE raw_payload = 'late'"
    )[0][0]
    watermark = env.query(
        "wh",
        "SELECT last_extracted_at FROM fleet_control.extract_watermarks WHERE table_name = 'position_history'",
    )[0][0]
    assert watermark < recorded  # type: ignore[operator]

    after = ingest("fleet", tables=["position_history"])

    assert rows_loaded(after) == {"position_history": 1}
    assert env.query(
        "wh", "SELECT count(*) FROM fleet_bronze.position_history WHERE raw_payload = 'late'"
    ) == [(1,)]
    _assert_parity(env, ("position_history",))


def test_backfill_replays_history_without_duplicates(env: Env) -> None:
    env.migrate()
    counts = seed_fleet(1000)
    ingest("fleet", tables=list(INCREMENTAL))

    replay = ingest("fleet", tables=list(INCREMENTAL), full_refresh=True)

    assert rows_loaded(replay) == dict.fromkeys(INCREMENTAL, 0)
    assert {t.table: t.rows_skipped for t in replay.tables} == {t: counts[t] for t in INCREMENTAL}
    for table in INCREMENTAL:
        assert env.count("wh", table) == counts[table]


def test_backfill_wins_over_a_run_still_waiting_in_exports(env: Env) -> None:
    env.migrate()
    seed_fleet(1000)
    ingest("fleet", tables=["alarms"])
    # Rows lost from bronze (say, a restore from an older backup): a backfill must bring them back.
    env.query("wh", "DELETE FROM fleet_bronze.alarms WHERE mod(alarm_id, 7) = 0")
    since = env.query("source", "SELECT min(recorded_at) - interval '1 second' FROM public.alarms")[0][0]
    assert isinstance(since, datetime)
    # A later run extracted but not loaded: its part waits in exports/ for recovery.
    seed_fleet(300)
    engine = env.engine()
    leftover = extract_table(engine, engine.catalog.table("alarms"))
    assert len(env.location_keys("fleet", "exports", "alarms")) == 1

    run = ingest("fleet", tables=["alarms"], backfill_from=since)

    assert rows_loaded(run)["alarms"] > 0
    lower = env.query(
        "wh",
        "SELECT lower_bound FROM fleet_control.extract_runs WHERE table_name = 'alarms' AND run_id > %s",
        (leftover.run_id,),
    )
    assert lower == [(since,)]  # the extract started where the backfill said, not at the leftover's bound
    assert env.location_keys("fleet", "exports") == []
    _assert_parity(env, ("alarms",))
    watermark = env.query(
        "wh", "SELECT last_extracted_at FROM fleet_control.extract_watermarks WHERE table_name = 'alarms'"
    )[0][0]
    assert watermark >= leftover.upper  # type: ignore[operator]  (the backfill's own load moved it on)


def _dwh_run_killed_at(failpoints: Failpoints, failpoint: str, table: str, ingest_mode: str) -> None:
    """`dwh run fleet --table <table>` in a child process, killed at `failpoint`."""
    failpoints.kill_at(failpoint)
    done = dwh_run_fleet(table)
    assert failpoints.killed(failpoint)
    assert done.returncode == KILLED_EXIT[ingest_mode], done.stderr.decode()[-2000:]


@each_mode_and_storage
def test_killed_after_commit_before_move_next_run_only_moves(
    env: Env, failpoints: Failpoints, ingest_mode: str
) -> None:
    env.migrate()
    counts = seed_fleet(1000)
    _dwh_run_killed_at(failpoints, "load.after_commit", "alarms", ingest_mode)
    assert env.count("wh", "alarms") == counts["alarms"]
    assert len(env.location_keys("fleet", "exports", "alarms")) == 1
    assert env.query("wh", "SELECT status FROM fleet_control.extract_runs") == [("loaded",)]

    after = ingest("fleet", tables=["alarms"])

    assert rows_loaded(after) == {"alarms": 0}
    assert env.count("wh", "alarms") == counts["alarms"]
    assert env.location_keys("fleet", "exports") == []
    assert len(env.location_keys("fleet", "processed", "alarms")) == 1


@each_mode_and_storage
def test_killed_before_commit_commits_nothing_and_next_run_loads(
    env: Env, failpoints: Failpoints, ingest_mode: str
) -> None:
    env.migrate()
    counts = seed_fleet(1000)
    _dwh_run_killed_at(failpoints, "load.before_commit", "trips", ingest_mode)
    assert env.count("wh", "trips") == 0
    assert env.query("wh", "SELECT status FROM fleet_control.extract_runs") == [("uploaded",)]
    assert len(env.location_keys("fleet", "exports", "trips")) == 1

    after = ingest("fleet", tables=["trips"])

    assert rows_loaded(after) == {"trips": counts["trips"]}
    assert env.location_keys("fleet", "exports") == []
    _assert_parity(env, ("trips",))


@both_modes
def test_malformed_part_fails_its_table_with_file_and_line_while_others_load(env: Env) -> None:
    env.migrate()
    counts = seed_fleet(1000)
    engine = env.engine()
    extracted = extract_table(engine, engine.catalog.table("trips"))
    (key,) = env.location_keys("fleet", "exports", "trips")
    path = Path(env.storage_url.removeprefix("file://")) / key
    lines = path.read_bytes().split(b"\n")
    lines[3] = b"not-a-number" + lines[3][lines[3].index(b",") :]
    path.write_bytes(b"\n".join(lines))

    with pytest.raises(IngestFailedError) as caught:
        ingest("fleet")

    by_table = {t.table: t for t in caught.value.summary.tables}
    assert by_table["trips"].status == "failed"
    assert key.rsplit("/", 1)[-1] in (by_table["trips"].error or "")
    assert "line 4" in (by_table["trips"].error or "")
    assert all(t.status == "loaded" for name, t in by_table.items() if name != "trips")
    assert env.count("wh", "trips") == 0
    assert env.count("wh", "alarms") == counts["alarms"]
    status, error = env.query(
        "wh",
        "SELECT status, error_message FROM fleet_control.extract_runs WHERE run_id = %s",
        (extracted.run_id,),
    )[0]
    assert status == "failed"
    assert "line 4" in str(error)
    assert "trip_id" in str(error)
    for text in (str(error), by_table["trips"].error or ""):
        assert "not-a-number" not in text, "a row value never reaches logs, notifications or the run log"
    assert env.location_keys("fleet", "exports", "trips") == [key]


def test_merge_mode_updates_changed_rows_and_leaves_unchanged_rows_untouched(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    catalog = (
        (PIPELINES_DIR / "fleet.yaml")
        .read_text()
        .replace(
            "  devices:\n    mode: snapshot\n    key: [device_id]",
            "  devices:\n    mode: merge\n    watermark: updated_at\n    key: [device_id]",
        )
    )
    (pipelines / "fleet.yaml").write_text(catalog)
    monkeypatch.setenv("DWH_PIPELINES_DIR", str(pipelines))
    env.migrate()
    counts = seed_fleet(1000)
    assert rows_loaded(ingest("fleet", tables=["devices"])) == {"devices": counts["devices"]}
    before = dict(env.query("wh", "SELECT device_id, _dwh_loaded_at FROM fleet_bronze.devices"))
    env.query(
        "source",
        "UPDATE public.devices SET name = name || ' (renamed)', updated_at = clock_timestamp() WHERE device_id IN (2, 3)",
    )

    changed = ingest("fleet", tables=["devices"])
    unchanged = ingest("fleet", tables=["devices"], backfill_from=datetime(2000, 1, 1, tzinfo=UTC))

    assert rows_loaded(changed) == {"devices": 2}
    assert rows_loaded(unchanged) == {"devices": 0}
    assert unchanged.tables[0].rows_skipped == counts["devices"]
    after = dict(env.query("wh", "SELECT device_id, _dwh_loaded_at FROM fleet_bronze.devices"))
    assert {k for k in after if after[k] != before[k]} == {2, 3}
    names = env.query("wh", "SELECT count(*) FROM fleet_bronze.devices WHERE name LIKE '%% (renamed)'")
    assert names == [(2,)]


@both_modes
def test_renamed_source_column_fails_that_table_by_name_and_the_others_load(env: Env) -> None:
    env.migrate()
    counts = seed_fleet(1000)
    env.query("source", "ALTER TABLE public.alarms RENAME COLUMN message TO msg")

    with pytest.raises(IngestFailedError) as caught:
        ingest("fleet")

    by_table = {t.table: t for t in caught.value.summary.tables}
    assert by_table["alarms"].status == "failed"
    assert "table fleet.alarms: bronze column 'message' has no source column" in (
        by_table["alarms"].error or ""
    )
    assert {t for t, o in by_table.items() if o.status == "loaded"} == {
        *SNAPSHOT,
        "position_history",
        "trips",
    }
    assert env.count("wh", "alarms") == 0
    assert env.count("wh", "trips") == counts["trips"]
    assert env.location_keys("fleet", "exports", "alarms") == []
    logged = env.query("wh", "SELECT table_name, error_message FROM fleet_control.v_recent_failures")
    assert [(t, "bronze column 'message'" in str(e)) for t, e in logged] == [("alarms", True)]


def test_retried_parent_does_not_redo_tables_that_finished(env: Env) -> None:
    env.migrate()
    counts = seed_fleet(1000)
    env.query("source", "ALTER TABLE public.alarms RENAME COLUMN message TO msg")
    attempts: list[int] = []

    def repair_source_on_retry(*_: object) -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 2:  # the operator fixes the drift before the retry
            env.query("source", "ALTER TABLE public.alarms RENAME COLUMN msg TO message")

    retried = ingest.with_options(retries=1, retry_delay_seconds=0, on_running=[repair_source_on_retry])
    summary = retried("fleet")

    assert attempts == [1, 2]
    assert {t.status for t in summary.tables} == {"loaded"}
    # One loaded run per table: the five tables that finished in the first attempt
    # came back from their persisted, cached results instead of running again; alarms
    # also logged its failed first attempt, naming the column.
    runs = env.query(
        "wh", "SELECT table_name, status, count(*) FROM fleet_control.extract_runs GROUP BY 1, 2"
    )
    assert {(t, s): n for t, s, n in runs} == {
        **{(t, "loaded"): 1 for t in (*SNAPSHOT, *INCREMENTAL)},
        ("alarms", "failed"): 1,
    }
    failure = env.query("wh", "SELECT error_message FROM fleet_control.extract_runs WHERE status = 'failed'")
    assert "bronze column 'message' has no source column" in str(failure[0][0])
    assert rows_loaded(summary) == {t: counts[t] for t in (*SNAPSHOT, *INCREMENTAL)}
    _assert_parity(env)


@pytest.mark.parametrize("storage_kind", ["file", "s3"], indirect=True)
def test_files_in_exports_that_are_not_parts_are_ignored_with_one_warning(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """An S3 console's folder marker, a stray upload or a file in a sub-folder never blocks a table."""
    from dwh.ingest.parts import exports_prefix  # noqa: PLC0415
    from dwh.ingest.storage import S3Storage  # noqa: PLC0415
    from dwh.operations.health import check_health  # noqa: PLC0415
    from dwh.operations.verify import verify  # noqa: PLC0415

    env.migrate()
    counts = seed_fleet(500)
    engine = env.engine()
    folder = exports_prefix(engine.location, "fleet", "trips")
    strays = [f"{folder}/notes.txt", f"{folder}/old/20260101_0000_UTC_1_0000.csv"]
    if isinstance(engine.location.storage, S3Storage):
        # What the console's "Create folder" (and the seed's Phase B) leaves behind.
        storage = engine.location.storage
        storage.client.put_object(Bucket=storage.bucket, Key=f"{folder}/", Body=b"")
        strays += [f"{folder}/", f"{folder}/.keep"]
    for key in strays:
        if not key.endswith("/"):
            staged = engine.location.storage.staging_path(key, env.stack.state_dir)
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged.write_bytes(b"not a part\n")
            engine.location.storage.publish(staged, key)

    with caplog.at_level("WARNING", logger="dwh.ingest.load"):
        summary = ingest("fleet", tables=["trips"])

    assert rows_loaded(summary) == {"trips": counts["trips"]}
    warnings = [r.getMessage() for r in caplog.records if "not parts" in r.getMessage()]
    assert warnings, "the strays were ignored without a word"
    for key in strays:
        assert engine.location.storage.url(key) in warnings[0], key
    gate = next(g for g in verify(engine) if g.gate == "exports/ empty")
    assert gate.ok, gate.detail
    backlog = next(c for c in check_health(engine, prefect=False) if c.check == "exports/ backlog")
    assert backlog.ok, backlog.detail
    assert set(strays) <= set(engine.location.storage.list(folder)), "somebody else's files stay"


def test_a_run_resolves_its_engine_once_and_skips_recovery_when_nothing_waits(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per-table overhead: the parent resolves an engine once and lends it to every chain;
    the recovery load runs only when a part or an unfinished run waits, and a waiting one
    is still loaded."""
    import tasks.load  # noqa: PLC0415
    from dwh.ingest.engine import Engine  # noqa: PLC0415

    env.migrate()
    counts = seed_fleet(300)
    resolved: list[str] = []
    loads: list[tuple[str, str]] = []
    from_settings = Engine.from_settings.__func__  # type: ignore[attr-defined]
    load_pending, load_following = tasks.load.load_pending, tasks.load.load_following

    def counted_engine(cls: type[Engine], pipeline: str) -> Engine:
        resolved.append(pipeline)
        return from_settings(cls, pipeline)  # type: ignore[no-any-return]

    def counted_recovery(engine: Engine, table: object, **kwargs: object) -> object:
        loads.append(("waiting", getattr(table, "name", "?")))
        return load_pending(engine, table, **kwargs)

    def counted_follow(engine: Engine, table: object, *args: object, **kwargs: object) -> object:
        loads.append(("beside the extract", getattr(table, "name", "?")))
        return load_following(engine, table, *args, **kwargs)

    monkeypatch.setattr(Engine, "from_settings", classmethod(counted_engine))
    monkeypatch.setattr(tasks.load, "load_pending", counted_recovery)
    monkeypatch.setattr(tasks.load, "load_following", counted_follow)

    first = ingest("fleet", tables=["trips", "alarms"])

    assert rows_loaded(first) == {"trips": counts["trips"], "alarms": counts["alarms"]}
    assert len(resolved) == 1  # the parent's, lent to both chains
    # One load per table, beside its extract; no recovery load: nothing waited.
    assert sorted(loads) == [("beside the extract", "alarms"), ("beside the extract", "trips")]

    # A run extracted but never loaded (the process died): the next run recovers it first.
    seed_fleet(100)
    engine = env.engine()
    extract_table(engine, engine.catalog.table("trips"))
    resolved.clear()
    loads.clear()

    second = ingest("fleet", tables=["trips"])

    # The recovery; the run before took every new row, so the window after it is quiet
    # and recorded without an extract and a load.
    assert loads == [("waiting", "trips")]
    assert [t.rows_extracted for t in second.tables] == [0]
    assert len(resolved) == 1
    assert rows_loaded(second)["trips"] == env.count("source", "trips") - counts["trips"]
    _assert_parity(env, ("trips",))
