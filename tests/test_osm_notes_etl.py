"""OSM-notes ETL on real PostGIS: migrate, the etl flow and its runs, failures and retries, the CLI."""

from __future__ import annotations

import shutil
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from dwh.analytics.steps import TransformError
from dwh.analytics.transform import run_transform
from dwh.cli import app
from dwh.core.catalog import load_catalog
from dwh.core.migrate import MigrationError, migrate
from dwh.core.settings import WarehouseSettings
from dwh.ingest.engine import Engine
from dwh.onboarding.seed import seed_source
from flows.etl import etl as etl_flow
from flows.etl import etl_outcome, skipped_message
from tasks.transform import transform_task
from tests.conftest import PIPELINES_DIR, SQL_DIR, Env, app_conninfo
from tests.failpoints import Failpoints
from tests.osm_notes import (
    DWH,
    FIRST_BATCH,
    FIRST_FACTS,
    PIPELINE,
    etl,
    facts,
    first_batch,
    owner,
    refresh,
    snapshot,
    source_sql,
    sync_bronze,
    transform,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")


# ----------------------------------------------------------------------------- tests


def test_migrate_runs_the_pipeline_bootstrap_so_the_owner_owns_the_dwh_schema(osm: Env) -> None:
    owner_of = osm.query("wh", "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = %s", (DWH,))
    assert owner_of == [("osm_notes_owner",)]
    tables = {r[0] for r in osm.query("wh", "SELECT tablename FROM pg_tables WHERE schemaname = %s", (DWH,))}
    assert {
        "facts",
        "fact_hashtags",
        "dim_users",
        "dim_countries",
        "datamart_users",
        "datamart_global",
    } <= tables
    migrate(osm.catalog(), WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]  # idempotent
    with psycopg.connect(WarehouseSettings().ro_conninfo(PIPELINE), autocommit=True) as ro:  # type: ignore[call-arg]
        ro.execute(f"SELECT count(*) FROM {DWH}.datamart_users JOIN {DWH}.facts ON false")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            ro.execute(f"SELECT count(*) FROM {DWH}.datamart_dirty_users")


def test_broken_pipeline_bootstrap_fails_migrate_naming_its_file(env: Env, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    (sql_dir / PIPELINE / "bootstrap.sql").write_text("CREATE SCHEMA {dwh} AUTHORIZATION no_such_role;\n")
    env.pipeline = PIPELINE

    with pytest.raises(MigrationError, match=r"osm_notes/bootstrap\.sql.*no_such_role"):
        migrate(env.catalog(), WarehouseSettings(), sql_dir)  # type: ignore[call-arg]


def test_generated_source_incremental_run_equals_rebuild_from_scratch(
    osm: Env, caplog: pytest.LogCaptureFixture
) -> None:
    conninfo = app_conninfo()
    first = seed_source(conninfo, PIPELINE, rows=0, sql_dir=SQL_DIR, notes=1500)
    sync_bronze()
    assert transform().facts_inserted == first["note_comments"]
    refresh()
    second = seed_source(conninfo, PIPELINE, rows=0, sql_dir=SQL_DIR, notes=300)
    sync_bronze()

    with caplog.at_level("WARNING", logger="dwh.analytics.transform"):
        result = transform()

    assert result.comments_in_window == second["note_comments"] - first["note_comments"]
    assert result.invalid_transitions > 0  # the generator closes some closed notes
    assert f"{result.invalid_transitions} invalid state transition(s)" in caplog.text
    assert result.facts_updated > 0  # back-filled comments moved later positions
    assert result.status_mismatches == 0
    consistency = osm.query(
        "wh",
        f"""SELECT
            (SELECT count(*) FROM osm_notes_bronze.note_comments AS c
             WHERE NOT EXISTS (SELECT FROM {DWH}.facts AS f
                               WHERE f.note_id = c.note_id AND f.sequence = c.sequence)),
            (SELECT count(*) FROM {DWH}.facts) - (SELECT count(*) FROM osm_notes_bronze.note_comments),
            (SELECT count(*) FROM {DWH}.dim_notes AS d JOIN osm_notes_bronze.notes AS n USING (note_id)
             WHERE (d.status, d.closed_at) IS DISTINCT FROM (n.status, n.closed_at))""",
    )
    assert consistency == [(0, 0, 0)]  # every comment once; the generator's statuses agree
    refresh()
    incremental = snapshot(osm)
    assert len(incremental["users"]) > 100

    refresh(full_rebuild=True)

    assert snapshot(osm) == incremental
    before = facts(osm)
    transform(rebuild=True)
    assert facts(osm) == before


def test_comments_wait_for_their_note_row_then_are_built(osm: Env, caplog: pytest.LogCaptureFixture) -> None:
    source_sql(FIRST_BATCH)
    sync_bronze(["countries", "users", "note_comments"])

    with caplog.at_level("WARNING", logger="dwh.analytics.transform"):
        waiting = transform()

    assert (waiting.comments_waiting, waiting.facts_inserted) == (12, 0)
    assert "12 comment(s) wait for their note row" in caplog.text
    sync_bronze(["notes"])
    built = transform()
    assert (built.comments_waiting, built.facts_inserted) == (0, 12)
    assert facts(osm) == FIRST_FACTS


def test_overlapping_etl_run_is_skipped_not_doubled(osm: Env) -> None:
    source_sql(FIRST_BATCH)
    first: list[Any] = []
    with psycopg.connect(osm.warehouse_admin) as blocker:
        # Hold facts so the first run stops inside its transform, holding the ETL lock.
        blocker.execute(f"LOCK TABLE {DWH}.facts IN ACCESS EXCLUSIVE MODE")
        runner = threading.Thread(target=lambda: first.append(etl_flow(PIPELINE, return_state=True)))
        runner.start()
        deadline = time.monotonic() + 120
        while not osm.query(
            "wh",
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
            " AND usename = 'osm_notes_owner' AND wait_event_type = 'Lock'",
        ):
            assert runner.is_alive(), "the first run ended before reaching the transform"
            assert time.monotonic() < deadline, "the first run never reached the transform"
            time.sleep(0.2)

        second = etl_flow(PIPELINE, return_state=True)

        assert second.is_completed()
        assert (
            second.message == skipped_message(PIPELINE) == "skipped: another osm_notes_etl run is in progress"
        )
        assert etl_outcome(second).skipped
        blocker.commit()
    runner.join(timeout=120)

    assert etl_outcome(first[0]).transform is not None
    assert osm.query("wh", "SELECT count(*) FROM osm_notes_control.extract_runs") == [(4,)]  # one ingest
    assert osm.query("wh", f"SELECT count(*) FROM {DWH}.facts") == [(12,)]
    runs = osm.query("wh", "SELECT status, comments_in_window FROM osm_notes_control.transform_runs")
    assert runs == [("succeeded", 12)]


def test_cli_seeds_runs_the_etl_and_refreshes_datamarts(osm: Env) -> None:
    cli = CliRunner()

    seeded = cli.invoke(app, ["seed-source", PIPELINE, "--notes", "200"])
    ran = cli.invoke(app, ["run", PIPELINE])
    marts = cli.invoke(app, ["datamarts", PIPELINE, "--full-rebuild"])

    assert seeded.exit_code == 0, seeded.output
    assert "note_comments" in seeded.output
    assert ran.exit_code == 0, ran.output
    assert "osm_notes transform (first build)" in " ".join(ran.output.split())
    assert marts.exit_code == 0, marts.output
    assert "full rebuild" in marts.output
    assert osm.query("wh", f"SELECT count(*) > 0 FROM {DWH}.datamart_users") == [(True,)]
    runs = osm.query(
        "wh",
        "SELECT datamart, full_rebuild, status FROM osm_notes_control.datamart_runs ORDER BY started_at, 1",
    )
    # `dwh run` refreshed the marked rows, then `dwh datamarts --full-rebuild` every row.
    assert runs == [
        (m, full, "succeeded") for full in (False, True) for m in ("countries", "global", "users")
    ]


@pytest.mark.usefixtures("osm")
def test_the_old_redo_everything_names_still_work_for_a_release_and_warn() -> None:
    """Deployments registered before the rename pass `full_rebuild` (datamarts): it must still do a full refresh."""
    from flows.datamarts import datamarts, datamarts_outcome  # noqa: PLC0415

    seed_source(app_conninfo(), PIPELINE, rows=0, sql_dir=SQL_DIR, notes=200)
    etl_outcome(etl_flow(PIPELINE, return_state=True))

    with pytest.warns(DeprecationWarning, match="'full_rebuild' is deprecated.*use 'full_refresh'"):
        old = datamarts_outcome(datamarts(PIPELINE, full_rebuild=True, return_state=True))
    new = datamarts_outcome(datamarts(PIPELINE, full_refresh=True, return_state=True))
    marked = datamarts_outcome(datamarts(PIPELINE, return_state=True))

    assert [r.full_rebuild for r in old.results] == [True, True, True]
    assert [r.full_rebuild for r in new.results] == [True, True, True]
    assert [r.full_rebuild for r in marked.results] == [False, False, False]
    assert old.results[0].rows_refreshed == new.results[0].rows_refreshed > 0


def test_a_datamarts_run_resolves_its_engine_once_and_lends_it_to_its_tasks(
    osm: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resolving reads the catalog and settings (and blocks from the server): once per run, not per task."""
    from flows.datamarts import datamarts, datamarts_outcome  # noqa: PLC0415

    etl_outcome(etl_flow(PIPELINE, return_state=True))
    resolved: list[str] = []
    original = Engine.from_settings.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Engine], pipeline: str) -> Engine:
        resolved.append(pipeline)
        return original(cls, pipeline)  # type: ignore[no-any-return]

    monkeypatch.setattr(Engine, "from_settings", classmethod(counting))
    outcome = datamarts_outcome(datamarts(PIPELINE, return_state=True))

    assert [r.datamart for r in outcome.results] == ["countries", "global", "users"]
    assert resolved == [PIPELINE]  # the flow's guarded engine; the three tasks borrow it
    assert osm.query("wh", "SELECT count(*) FROM osm_notes_control.datamart_runs")[0][0] == 6


def test_seed_source_builds_realistic_notes_then_adds_newer_activity(osm: Env) -> None:
    conninfo = app_conninfo()

    first = seed_source(conninfo, PIPELINE, rows=0, sql_dir=SQL_DIR, notes=2000)

    assert (first["countries"], first["notes"], first["users"]) == (36, 2000, 250)
    assert 2.3 < (first["note_comments"] + first["note_comments_missing"]) / first["notes"] < 2.8
    assert first["note_comments_missing"] > 0  # withheld, back-filled by the next call
    (shape,) = osm.query(
        "source",
        """SELECT
            (SELECT array_agg(DISTINCT status ORDER BY status) FROM notes),
            (SELECT array_agg(DISTINCT action ORDER BY action) FROM note_comments),
            (SELECT count(*) FILTER (WHERE user_id IS NULL) > 0 FROM note_comments),
            (SELECT count(*) FROM countries
             WHERE NOT (ST_IsValid(geom) AND ST_SRID(geom) = 4326 AND GeometryType(geom) = 'MULTIPOLYGON'
                        AND iso_alpha2 ~ '^[A-Z]{2}$' AND iso_alpha3 ~ '^[A-Z]{3}$')),
            (SELECT round(avg((EXISTS (SELECT FROM countries AS c WHERE ST_Intersects(c.geom, n.geom)))::int), 2)
             FROM notes AS n)""",
    )
    assert shape[:4] == (
        ["closed", "hidden", "open"],
        ["closed", "commented", "hidden", "opened", "reopened"],
        True,
        0,
    )
    assert Decimal("0.9") < shape[4] < 1  # some notes are at sea
    scripts = {
        "cyrillic": "[а-я]", "cjk": "[一-龥]", "arabic": "[ء-ي]", "greek": "[α-ω]", "emoji": "[🍜🚲🥐👍✅]",  # noqa: RUF001
        "hashtag": "#[^ ]", "streetcomplete": "via StreetComplete", "organic maps": "#organicmaps",
        "crlf": "\r\n",
    }  # fmt: skip
    for kind, pattern in scripts.items():
        found = osm.query("source", "SELECT count(*) FROM note_comments WHERE body ~ %s", (pattern,))
        assert found[0][0] > 0, kind
    before = osm.query("source", "SELECT max(created_at), max(inserted_at) FROM note_comments")[0]

    second = seed_source(conninfo, PIPELINE, rows=0, sql_dir=SQL_DIR, notes=100)

    assert (second["notes"], second["users"]) == (2100, 262)
    (activity,) = osm.query(
        "source",
        """SELECT
            count(*) FILTER (WHERE c.note_id <= 2000 AND c.action = 'closed'),
            count(*) FILTER (WHERE c.note_id <= 2000 AND c.action = 'reopened'),
            count(*) FILTER (WHERE c.note_id <= 2000 AND c.created_at <= %s),
            count(*) FILTER (WHERE c.note_id > 2000 AND c.created_at <= %s)
        FROM note_comments AS c
        WHERE c.inserted_at > %s""",
        (before[0], before[0], before[1]),
    )
    closes, reopens, backfilled, new_but_old = activity
    assert closes > 0  # existing notes closed ...
    assert reopens > 0  # ... and reopened
    assert backfilled == first["note_comments_missing"]  # old timestamps, new inserted_at
    assert new_but_old == 0  # new notes happen after everything already stored
    renamed = osm.query("source", "SELECT count(*) FROM users WHERE updated_at > inserted_at")
    assert renamed == [(2,)]  # greatest(1, 250 / 100)
    changed = osm.query(
        "source", "SELECT count(*) FROM notes WHERE note_id <= 2000 AND updated_at > %s", (before[1],)
    )
    assert changed[0][0] > 0  # status changes reach the notes rows (merge watermark)


def test_failed_transform_step_names_file_and_line_and_commits_nothing(osm: Env, tmp_path: Path) -> None:
    source_sql(FIRST_BATCH)
    sync_bronze()
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    step = sql_dir / PIPELINE / "transform" / "22_stage_facts.sql"
    lines = step.read_text().splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if "c.created_at AS action_at" in line)
    lines[number - 1] = lines[number - 1].replace("c.created_at", "c.no_such_column")
    step.write_text("\n".join(lines) + "\n")

    with pytest.raises(TransformError, match=rf"22_stage_facts\.sql:{number}: .*no_such_column"):
        run_transform(load_catalog(PIPELINE, PIPELINES_DIR), owner(), sql_dir)

    assert osm.query("wh", f"SELECT count(*) FROM {DWH}.facts") == [(0,)]
    runs = osm.query("wh", "SELECT status, error_message FROM osm_notes_control.transform_runs")
    assert len(runs) == 1
    assert runs[0][0] == "failed"
    assert "22_stage_facts.sql" in str(runs[0][1])
    assert transform().facts_inserted == 12  # the real files still build everything


def test_transform_that_loses_its_connection_is_retried_and_builds_once(
    osm: Env, monkeypatch: pytest.MonkeyPatch, failpoints: Failpoints
) -> None:
    source_sql(FIRST_BATCH)
    terminated: list[object] = []

    def drop_the_transform_connection() -> None:
        """After 40_write_facts wrote the facts, uncommitted: the server ends the session."""
        terminated.extend(
            osm.query(
                "wh",
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                " AND usename = 'osm_notes_owner' AND state = 'idle in transaction'",
            )
        )

    monkeypatch.setattr("flows.etl.transform_task", transform_task.with_options(retry_delay_seconds=0))

    with failpoints.paused_at("step:41_dim_notes.sql", drop_the_transform_connection):
        result = etl()

    assert terminated == [(True,)]
    assert (result.first_run, result.facts_inserted) == (True, 12)
    assert facts(osm) == FIRST_FACTS
    runs = osm.query(
        "wh", "SELECT status, error_message FROM osm_notes_control.transform_runs ORDER BY started_at"
    )
    assert [status for status, _ in runs] == ["failed", "succeeded"]
    assert "41_dim_notes.sql" in str(runs[0][1])
    assert "terminat" in str(runs[0][1]) or "closed" in str(runs[0][1])


def test_a_broken_step_fails_the_etl_at_once_without_a_retry(
    osm: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source_sql(FIRST_BATCH)
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    step = sql_dir / PIPELINE / "transform" / "41_dim_notes.sql"
    step.write_text(step.read_text().replace("l.last_action_at\nFROM", "l.no_such_column\nFROM"))
    monkeypatch.setenv("DWH_SQL_DIR", str(sql_dir))

    with pytest.raises(TransformError, match=r"41_dim_notes\.sql:\d+: .*no_such_column") as failed:
        etl()

    assert not failed.value.transient
    runs = osm.query("wh", "SELECT status FROM osm_notes_control.transform_runs")
    assert runs == [("failed",)]  # retries are configured, but this would fail the same way again
    assert osm.query("wh", f"SELECT count(*) FROM {DWH}.facts") == [(0,)]


def test_rows_a_still_open_load_stamped_earlier_are_processed_by_the_next_run(osm: Env) -> None:
    first_batch(flow=False)
    late = psycopg.connect(owner())
    try:
        # A load in flight: its rows carry _dwh_loaded_at = its start, before the next
        # transform's clock, but become visible only when it commits, after that run.
        late.execute(
            "INSERT INTO osm_notes_bronze.note_comments"
            " (note_id, sequence, action, user_id, created_at, body, inserted_at)"
            " VALUES (6, 2, 'commented', 11, '2024-02-02 06:00Z', 'late load', now())"
        )
        during = transform()
        late.commit()
    finally:
        late.close()

    after = transform()

    assert (during.comments_in_window, during.facts_inserted) == (0, 0)
    assert (after.comments_in_window, after.facts_inserted) == (1, 1)
    assert osm.query("wh", f"SELECT action_position FROM {DWH}.facts WHERE note_id = 6 AND sequence = 2") == [
        (2,)
    ]
