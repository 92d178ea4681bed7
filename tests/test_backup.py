"""Restore drill: dump, drop, restore, and the next ingest continues without loss or duplicates."""

from __future__ import annotations

import subprocess

import psycopg
import pytest
from psycopg import sql

from dwh import devstack
from dwh.backup import BackupError, backup, list_backups, restore
from dwh.seed import seed_source
from dwh.settings import SourceSettings, WarehouseSettings
from flows.ingest import ingest
from tests.conftest import SQL_DIR, Env

pytestmark = pytest.mark.usefixtures("prefect_harness")
TABLES = ("devices", "live_positions", "geofences", "position_history", "trips", "alarms")


def _counts(env: Env, db: str) -> dict[str, int]:
    schema = "public" if db == "source" else "fleet_bronze"
    return {t: int(env.query(db, f"SELECT count(*) FROM {schema}.{t}")[0][0]) for t in TABLES}  # type: ignore[arg-type]


def _recreate_warehouse(env: Env) -> None:
    with psycopg.connect(env.stack.admin_conninfo("postgres"), autocommit=True) as conn:
        name = sql.Identifier(env.warehouse_db)
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template_postgis").format(name))


def test_restore_drill_continues_from_restored_watermarks(env: Env) -> None:
    env.migrate()
    engine = env.engine()
    seed_source(SourceSettings().conninfo(), "fleet", rows=1000, sql_dir=SQL_DIR)  # type: ignore[call-arg]
    ingest("fleet")
    before = _counts(env, "wh")
    watermarks = env.query(
        "wh", "SELECT table_name, last_extracted_at FROM fleet_control.extract_watermarks ORDER BY 1"
    )
    for _ in range(3):
        taken = backup(engine.catalog, engine.warehouse_conninfo, engine.location, SQL_DIR, keep=2)
    assert taken.schemas == ("fleet_bronze", "fleet_control")
    assert len(list_backups(engine.location, "fleet")) == 2  # retention deleted the oldest

    seed_source(SourceSettings().conninfo(), "fleet", rows=500, sql_dir=SQL_DIR)  # type: ignore[call-arg]
    _recreate_warehouse(env)
    assert env.query("wh", "SELECT to_regclass('fleet_bronze.trips')") == [(None,)]

    restored = restore(engine.catalog, "latest", engine.location, WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]

    assert restored == ["fleet_bronze", "fleet_control"]
    assert _counts(env, "wh") == before
    assert (
        env.query(
            "wh", "SELECT table_name, last_extracted_at FROM fleet_control.extract_watermarks ORDER BY 1"
        )
        == watermarks
    )
    owners = env.query("wh", "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'fleet_bronze'")
    assert owners == [("fleet_owner",)]

    after = ingest("fleet")
    assert {t.status for t in after.tables} == {"loaded"}
    assert _counts(env, "wh") == _counts(env, "source")
    duplicates = env.query(
        "wh", "SELECT count(*) - count(DISTINCT (device_id, gps_time)) FROM fleet_bronze.position_history"
    )
    assert duplicates == [(0,)]


def test_restoring_an_unknown_backup_names_what_exists(env: Env) -> None:
    env.migrate()
    engine = env.engine()
    with pytest.raises(BackupError, match=r"no backup nope\.dump \(have: none\)"):
        restore(engine.catalog, "nope.dump", engine.location, WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]


def test_a_replaced_archive_runs_with_the_owners_rights_never_a_superusers(env: Env) -> None:
    """Whoever holds the storage keys can swap an archive: its SQL must not run as the admin.

    The forged archive is a real backup plus a table whose CHECK calls a function that
    creates a table in `public` (PostgreSQL 15: only the database owner may); the check
    runs for every row the restore's COPY loads, as the restoring role.
    """
    env.migrate()
    engine = env.engine()
    forge = [
        (
            "CREATE FUNCTION fleet_bronze.pwn(x int) RETURNS int LANGUAGE plpgsql AS "
            "$$ BEGIN EXECUTE 'CREATE TABLE IF NOT EXISTS public.pwned(x int)'; RETURN x; END $$"
        ),
        "CREATE TABLE fleet_bronze.bait (x int CHECK (fleet_bronze.pwn(x) = x))",
        "INSERT INTO fleet_bronze.bait VALUES (1)",
        "DROP TABLE public.pwned",
    ]
    for statement in forge:
        env.query("wh", statement)
    key = f"{engine.location.key('fleet', 'backups')}/20990101_000000_000000_UTC.dump"
    dump = engine.location.storage.staging_path(key, env.stack.state_dir)
    subprocess.run(
        [str(devstack.PG_BIN / "pg_dump"), "--format=custom", "--schema=fleet_bronze", "--schema=fleet_control",
         "--file", str(dump), "--dbname", env.warehouse_admin],
        check=True, capture_output=True,
    )  # fmt: skip
    engine.location.storage.publish(dump, key)
    _recreate_warehouse(env)

    with pytest.raises(BackupError, match=r"as fleet_owner failed .*permission denied for schema public"):
        restore(engine.catalog, "latest", engine.location, WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]

    assert env.query("wh", "SELECT to_regclass('public.pwned')") == [(None,)]
    assert env.query("wh", "SELECT to_regclass('fleet_bronze.bait')") == [(None,)], "one transaction: nothing"


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
def test_parts_their_processed_copies_and_backups_are_written_with_server_side_encryption(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DWH_STORAGE_SSE", "aws:kms")
    monkeypatch.setenv("DWH_STORAGE_SSE_KMS_KEY_ID", "alias/dwh")
    env.migrate()
    engine = env.engine()
    seed_source(SourceSettings().conninfo(), "fleet", rows=300, sql_dir=SQL_DIR)  # type: ignore[call-arg]
    ingest("fleet", tables=["devices"])
    taken = backup(engine.catalog, engine.warehouse_conninfo, engine.location, SQL_DIR, keep=2)

    storage = engine.location.storage
    written = [*env.location_keys("fleet", "processed"), taken.key]
    assert len(written) == 2
    for key in written:
        head = storage.client.head_object(Bucket=storage.bucket, Key=key)  # type: ignore[attr-defined]
        assert head.get("ServerSideEncryption") == "aws:kms", key
        assert "alias/dwh" in head.get("SSEKMSKeyId", ""), key
