"""Migrations, roles, audits and grants against a real PostgreSQL 15 + PostGIS."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from dwh.core.catalog import load_catalog
from dwh.core.migrate import MigrationError, migrate, run_audits
from dwh.core.settings import WarehouseSettings
from tests.conftest import PIPELINES_DIR, SQL_DIR, Env

FLEET_TABLES = {"devices", "live_positions", "geofences", "position_history", "trips", "alarms"}


def test_migrations_apply_on_empty_warehouse_then_reapply_as_noop(env: Env) -> None:
    catalog = env.catalog()
    first = migrate(catalog, WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]
    assert first.applied == [
        "0001_control.sql",
        "0002_export.sql",
        "0003_rewind_fence.sql",
        "0004_holdback.sql",
        "0005_repair.sql",
        "0006_due_at.sql",
        "0007_reconcile.sql",
        "0100_bronze.sql",
        "0110_deleted_at.sql",
    ]

    second = migrate(catalog, WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]
    assert second.applied == []
    assert second.already_applied == [
        "0001_control.sql",
        "0002_export.sql",
        "0003_rewind_fence.sql",
        "0004_holdback.sql",
        "0005_repair.sql",
        "0006_due_at.sql",
        "0007_reconcile.sql",
        "0100_bronze.sql",
        "0110_deleted_at.sql",
    ]

    tables = {
        r[0] for r in env.query("wh", "SELECT tablename FROM pg_tables WHERE schemaname = 'fleet_bronze'")
    }
    assert tables == FLEET_TABLES
    watermarks = env.query(
        "wh", "SELECT table_name, last_extracted_at::text FROM fleet_control.extract_watermarks"
    )
    assert {t for t, _ in watermarks} == FLEET_TABLES
    assert {w for _, w in watermarks} == {"2000-01-01 00:00:00+00"}
    owners = env.query(
        "wh",
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname IN ('fleet_bronze', 'fleet_control')",
    )
    assert owners == [("fleet_owner",)]


def test_edited_applied_migration_is_refused(env: Env, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    catalog = env.catalog()
    migrate(catalog, WarehouseSettings(), sql_dir)  # type: ignore[call-arg]
    bronze = sql_dir / "fleet" / "migrations" / "0100_bronze.sql"
    bronze.write_text(bronze.read_text() + "\n-- an innocent edit\n")

    with pytest.raises(
        MigrationError, match=r"0100_bronze\.sql: was applied on .* Applied migrations are immutable"
    ):
        migrate(catalog, WarehouseSettings(), sql_dir)  # type: ignore[call-arg]


def test_audit_names_every_missing_role_and_conflict_key(env: Env, tmp_path: Path) -> None:
    # A pipeline name of its own, so dropping its role cannot disturb other tests.
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    text = (PIPELINES_DIR / "fleet.yaml").read_text().replace("pipeline: fleet", "pipeline: audited")
    (pipelines / "audited.yaml").write_text(text)
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    shutil.copytree(sql_dir / "fleet", sql_dir / "audited")
    catalog = load_catalog("audited", pipelines)
    migrate(catalog, WarehouseSettings(), sql_dir)  # type: ignore[call-arg]
    run_audits(catalog, env.warehouse_admin, sql_dir)  # passes when nothing is missing

    env.query("wh", "ALTER TABLE audited_bronze.trips DROP CONSTRAINT trips_pkey")
    env.query("wh", "ALTER TABLE audited_bronze.alarms DROP CONSTRAINT alarms_pkey")
    env.query("wh", "DROP OWNED BY audited_ro; DROP ROLE audited_ro")

    with pytest.raises(MigrationError) as caught:
        run_audits(catalog, env.warehouse_admin, sql_dir)
    message = str(caught.value)
    assert "R90_audit.sql" in message
    assert "role audited_ro does not exist" in message
    assert "audited_owner" not in message
    assert "table audited_bronze.alarms: no PRIMARY KEY/UNIQUE on (alarm_id)" in message
    assert "table audited_bronze.trips: no PRIMARY KEY/UNIQUE on (trip_id)" in message
    assert "position_history" not in message


def _ro_conninfo() -> str:
    return WarehouseSettings().ro_conninfo("fleet")  # type: ignore[call-arg]


def test_ro_role_reads_bronze_and_views_but_writes_nothing(env: Env) -> None:
    env.migrate()
    with psycopg.connect(_ro_conninfo(), autocommit=True) as conn:
        for relation in (
            "fleet_bronze.position_history",
            "fleet_bronze.devices",
            "fleet_control.v_table_freshness",
            "fleet_control.v_recent_failures",
            "fleet_control.v_watermark_lag",
            "fleet_control.v_table_due",
        ):
            conn.execute(f"SELECT count(*) FROM {relation}")
        for statement in (
            (
                "INSERT INTO fleet_bronze.devices (device_id, imei, name, is_active, created_at, updated_at)"
                " VALUES (1, 'x', 'x', true, now(), now())"
            ),
            "UPDATE fleet_bronze.devices SET name = 'y'",
            "DELETE FROM fleet_bronze.position_history",
            "TRUNCATE fleet_bronze.trips",
            "UPDATE fleet_control.extract_watermarks SET last_loaded_at = now()",
            "SELECT * FROM fleet_control.extract_runs",
            "CREATE TABLE fleet_bronze.sneaky (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
