"""A datamart computed on several sessions (its PARALLEL plan) equals one computed on one."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from dwh.analytics.datamarts import datamart_steps, refresh_datamart
from dwh.analytics.shares import PARALLEL_FILE, read_plan
from dwh.analytics.steps import TransformError
from dwh.core.catalog import load_catalog
from dwh.core.settings import DatamartSettings
from dwh.onboarding.seed import seed_source
from tests.conftest import PIPELINES_DIR, SQL_DIR, Env, app_conninfo
from tests.osm_notes import DWH, PIPELINE, owner, snapshot, sync_bronze, transform

ONE = DatamartSettings(sessions=1)
THREE = DatamartSettings(sessions=3, min_share=1)
SHARED_RANGE = "20_import.sql to 35_profile.sql on 3 sessions"


def _refresh_users(
    settings: DatamartSettings,
    *,
    full_rebuild: bool = False,
    sql_dir: Path = SQL_DIR,
    logger: logging.Logger | None = None,
) -> int:
    result = refresh_datamart(
        load_catalog(PIPELINE, PIPELINES_DIR),
        owner(),
        sql_dir,
        "users",
        full_rebuild=full_rebuild,
        settings=settings,
        logger=logger or logging.getLogger("test.shares"),
    )
    return result.rows_refreshed


def test_users_computed_on_three_sessions_equal_those_computed_on_one(
    osm: Env, caplog: pytest.LogCaptureFixture
) -> None:
    conninfo = app_conninfo()
    seed_source(conninfo, PIPELINE, rows=0, sql_dir=SQL_DIR, notes=600)
    sync_bronze()
    transform()
    few = DatamartSettings(sessions=3, min_share=100_000)  # 600 notes have some 75 users: too few to share
    with caplog.at_level(logging.DEBUG, logger="test.shares"):
        assert _refresh_users(few) > 50
    assert "35_profile.sql: " in caplog.text
    assert "sessions" not in caplog.text
    on_one = snapshot(osm)["users"]
    caplog.clear()

    with caplog.at_level(logging.DEBUG, logger="test.shares"):
        rebuilt = _refresh_users(THREE, full_rebuild=True)  # the table emptied, every row written again

    assert SHARED_RANGE in caplog.text
    assert rebuilt == len(on_one)
    assert snapshot(osm)["users"] == on_one
    # An increment refreshed on three sessions: its marked rows as a rebuild on one gives them.
    seed_source(conninfo, PIPELINE, rows=0, sql_dir=SQL_DIR, notes=150)
    sync_bronze()
    transform()
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="test.shares"):
        marked = _refresh_users(THREE)
    assert SHARED_RANGE in caplog.text
    incremental = snapshot(osm)["users"]
    assert 0 < marked < len(incremental)  # the marked users only
    assert incremental != on_one
    _refresh_users(ONE, full_rebuild=True)
    assert snapshot(osm)["users"] == incremental


def test_the_users_plan_shares_its_per_entity_steps_and_no_other() -> None:
    steps = datamart_steps(PIPELINE, SQL_DIR, "users")
    plan = read_plan(SQL_DIR / PIPELINE / "marts" / "users", steps)
    assert plan is not None
    before, shared, after, setup = plan.split(steps)
    assert [p.name for p in before] == ["05_settings.sql", "10_targets.sql"]
    assert [p.name for p in shared] == [
        "20_import.sql",
        "25_state.sql",
        "30_metrics.sql",
        "33_relative.sql",
        "35_profile.sql",
    ]
    assert [p.name for p in after] == ["38_write.sql", "40_rank.sql", "50_clear_marks.sql"]
    assert [p.name for p in setup] == ["05_settings.sql"]
    assert (
        read_plan(SQL_DIR / PIPELINE / "marts" / "countries", datamart_steps(PIPELINE, SQL_DIR, "countries"))
        is None
    )


def test_a_share_that_fails_names_its_step_and_leaves_rows_marks_and_sessions_as_they_were(
    osm: Env, tmp_path: Path
) -> None:
    seed_source(app_conninfo(), PIPELINE, rows=0, sql_dir=SQL_DIR, notes=300)
    sync_bronze()
    transform()
    _refresh_users(ONE)
    seed_source(app_conninfo(), PIPELINE, rows=0, sql_dir=SQL_DIR, notes=100)
    sync_bronze()
    transform()
    before = snapshot(osm)["users"]
    marks = osm.query("wh", f"SELECT user_id, mark FROM {DWH}.datamart_dirty_users ORDER BY 1")
    assert marks
    # Only the shares without a user id divisible by 3 divide by zero: one share fails.
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    step = sql_dir / PIPELINE / "marts" / "_entity" / "33_relative.sql"
    lines = step.read_text().splitlines()
    step.write_text(
        "\n".join([*lines, "SELECT 1 / (SELECT count(*) FROM dm_targets WHERE id % 3 = 0);"]) + "\n"
    )

    with pytest.raises(TransformError, match=r"_entity/33_relative\.sql: DivisionByZero: division by zero"):
        _refresh_users(THREE, sql_dir=sql_dir)

    assert snapshot(osm)["users"] == before
    assert osm.query("wh", f"SELECT user_id, mark FROM {DWH}.datamart_dirty_users ORDER BY 1") == marks
    runs = osm.query(
        "wh",
        "SELECT status, error_message FROM osm_notes_control.datamart_runs ORDER BY started_at DESC LIMIT 1",
    )
    assert runs[0][0] == "failed"
    assert "33_relative.sql" in str(runs[0][1])
    left = osm.query(
        "wh",
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() "
        "AND state IN ('idle in transaction', 'idle in transaction (aborted)')",
    )
    assert left == [(0,)]  # every share's session rolled back and closed
    _refresh_users(THREE)  # the real files still refresh the marked users
    assert osm.query("wh", f"SELECT count(*) FROM {DWH}.datamart_dirty_users") == [(0,)]


def test_a_warehouse_that_refuses_the_extra_sessions_gets_the_rows_from_one_and_a_warning(
    osm: Env, caplog: pytest.LogCaptureFixture
) -> None:
    seed_source(app_conninfo(), PIPELINE, rows=0, sql_dir=SQL_DIR, notes=300)
    sync_bronze()
    transform()
    role = osm.query("wh", f"SELECT tableowner FROM pg_tables WHERE schemaname = '{DWH}' LIMIT 1")[0][0]
    osm.query("wh", f'ALTER ROLE "{role}" CONNECTION LIMIT 1')  # the refresh's own session only
    try:
        with caplog.at_level(logging.DEBUG, logger="test.shares"):
            refreshed = _refresh_users(THREE)
    finally:
        osm.query("wh", f'ALTER ROLE "{role}" CONNECTION LIMIT -1')

    assert "20_import.sql to 35_profile.sql: 0 of 3 extra warehouse sessions opened" in caplog.text
    assert "too many connections" in caplog.text
    assert "35_profile.sql: " in caplog.text  # ran on the refresh's session
    assert refreshed > 0
    on_one = snapshot(osm)["users"]
    _refresh_users(ONE, full_rebuild=True)
    assert snapshot(osm)["users"] == on_one


def test_a_plan_naming_a_table_no_step_made_fails_the_refresh_and_is_recorded(
    osm: Env, tmp_path: Path
) -> None:
    seed_source(app_conninfo(), PIPELINE, rows=0, sql_dir=SQL_DIR, notes=300)
    sync_bronze()
    transform()
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    plan = sql_dir / PIPELINE / "marts" / "users" / PARALLEL_FILE
    plan.write_text(plan.read_text().replace("copy: dm_run dm_period", "copy: dm_run dm_period dm_nope"))

    with pytest.raises(
        TransformError, match="PARALLEL names temp table dm_nope, which no step before it created"
    ):
        _refresh_users(THREE, sql_dir=sql_dir)

    assert osm.query("wh", f"SELECT count(*) FROM {DWH}.datamart_users") == [(0,)]
    runs = osm.query("wh", "SELECT status, error_message FROM osm_notes_control.datamart_runs")
    assert runs == [("failed", "PARALLEL names temp table dm_nope, which no step before it created")]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("setup: 05_settings.sql\nsteps 20_import.sql 35_profile.sql\n", r"PARALLEL:2: expected one of"),
        ("setup: 05_settings.sql\nsetup: 05_settings.sql\n", r"PARALLEL:2: expected one of"),
        ("steps: 20_import.sql 35_profile.sql\n", r"PARALLEL: missing setup, share, copy, keep"),
        (
            "setup: 05_settings.sql\nsteps: 20_import.sql 99_none.sql\nshare: dm_targets.id\ncopy: dm_run\nkeep: dm_x\n",
            r"steps not in this datamart: \['99_none.sql'\]",
        ),
        (
            "setup: 05_settings.sql\nsteps: 20_import.sql 35_profile.sql\nshare: dm_targets\ncopy: dm_run\nkeep: dm_x\n",
            r"table\.column",
        ),
        (
            "setup: 38_write.sql\nsteps: 20_import.sql 35_profile.sql\nshare: dm_targets.id\ncopy: dm_run\nkeep: dm_x\n",
            r"setup steps must come before 20_import.sql",
        ),
    ],
)
def test_a_parallel_plan_that_does_not_fit_names_its_file_and_line(
    tmp_path: Path, text: str, complaint: str
) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    folder = sql_dir / PIPELINE / "marts" / "users"
    (folder / PARALLEL_FILE).write_text(text)

    with pytest.raises(ValueError, match=complaint):
        read_plan(folder, datamart_steps(PIPELINE, sql_dir, "users"))
