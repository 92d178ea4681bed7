"""Restore drill: dump, drop, restore, and the next ingest continues without loss or duplicates.

Also what makes a restore safe: only an archive whose sha256 matches its ledger line
(or the digest an operator passes) is restored, and then as the owner, never the admin.
"""

from __future__ import annotations

import hashlib
import subprocess

import psycopg
import pytest
from psycopg import sql

import devstack
from dwh.core.settings import WarehouseSettings
from dwh.ingest.storage import Location
from dwh.operations.backup import BackupError, backup, backup_location, ledger, list_backups, restore
from dwh.operations.guard import RoleRightsError, check_roles
from flows.ingest import ingest
from tests.conftest import SQL_DIR, Env, seed_fleet

pytestmark = pytest.mark.usefixtures("prefect_harness")
TABLES = ("devices", "live_positions", "geofences", "position_history", "trips", "alarms")


def _counts(env: Env, db: str) -> dict[str, int]:
    schema = "public" if db == "source" else "fleet_bronze"
    return {t: int(env.query(db, f"SELECT count(*) FROM {schema}.{t}")[0][0]) for t in TABLES}  # type: ignore[arg-type]


def _sha256_at(location: Location, key: str) -> str:
    with location.storage.open_read(key) as data:
        return hashlib.sha256(data.read()).hexdigest()


def _recreate_warehouse(env: Env) -> None:
    with psycopg.connect(env.stack.admin_conninfo("postgres"), autocommit=True) as conn:
        name = sql.Identifier(env.warehouse_db)
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template_postgis").format(name))


def test_restore_drill_continues_from_restored_watermarks(env: Env) -> None:
    env.migrate()
    engine = env.engine()
    seed_fleet(1000)
    ingest("fleet")
    before = _counts(env, "wh")
    watermarks = env.query(
        "wh", "SELECT table_name, last_extracted_at FROM fleet_control.extract_watermarks ORDER BY 1"
    )
    backups = backup_location()
    for _ in range(3):
        taken = backup(engine.catalog, engine.warehouse_conninfo, backups, SQL_DIR, keep=2)
    assert taken.schemas == ("fleet_bronze", "fleet_control")
    assert len(list_backups(backups, "fleet")) == 2  # retention deleted the oldest
    assert not env.location_keys("fleet", "backups"), "archives live outside the parts' prefix"

    seed_fleet(500)
    _recreate_warehouse(env)
    assert env.query("wh", "SELECT to_regclass('fleet_bronze.trips')") == [(None,)]

    # A fresh database has no ledger line: the operator vouches with the digest the run logged.
    with pytest.raises(BackupError, match=r"has no line in fleet_ledger\.backups .* pass --sha256"):
        restore(engine.catalog, taken.key, backups, WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]
    restored = restore(engine.catalog, "latest", backups, WarehouseSettings(), SQL_DIR, sha256=taken.sha256)  # type: ignore[call-arg]

    assert restored == ["fleet_bronze", "fleet_control"]
    assert env.query("wh", "SELECT key, sha256 FROM fleet_ledger.backups") == [(taken.key, taken.sha256)]
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
        restore(engine.catalog, "nope.dump", backup_location(), WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]


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
    backups = backup_location()
    key = backups.key("fleet", "20990101_000000_000000_UTC.dump")
    dump = backups.storage.staging_path(key, env.stack.state_dir)
    subprocess.run(
        [str(devstack.PG_BIN / "pg_dump"), "--format=custom", "--schema=fleet_bronze", "--schema=fleet_control",
         "--file", str(dump), "--dbname", env.warehouse_admin],
        check=True, capture_output=True,
    )  # fmt: skip
    backups.storage.publish(dump, key)
    _recreate_warehouse(env)
    with pytest.raises(BackupError, match=r"no backup to restore \(1 archive\(s\), none with a line"):
        restore(engine.catalog, "latest", backups, WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]

    # Even when an operator vouches for it, its SQL runs with the owner's rights only.
    forged = _sha256_at(backups, key)
    with pytest.raises(BackupError, match=r"as fleet_owner failed .*permission denied for schema public"):
        restore(engine.catalog, "latest", backups, WarehouseSettings(), SQL_DIR, sha256=forged)  # type: ignore[call-arg]

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
    seed_fleet(300)
    ingest("fleet", tables=["devices"])
    taken = backup(engine.catalog, engine.warehouse_conninfo, backup_location(), SQL_DIR, keep=2)

    written = [
        *((engine.location.storage, k) for k in env.location_keys("fleet", "processed")),
        (backup_location().storage, taken.key),
    ]
    assert len(written) == 2
    for storage, key in written:
        head = storage.client.head_object(Bucket=storage.bucket, Key=key)  # type: ignore[attr-defined]
        assert head.get("ServerSideEncryption") == "aws:kms", key
        assert "alias/dwh" in head.get("SSEKMSKeyId", ""), key


def _backed_up(env: Env, rows: int) -> tuple[Location, list[str], list[int]]:
    """Two backups with different trips in each; their keys and trip counts, oldest first."""
    env.migrate()
    engine = env.engine()
    backups = backup_location()
    keys, trips = [], []
    for _ in range(2):
        seed_fleet(rows)
        ingest("fleet", tables=["devices", "trips"])
        keys.append(backup(engine.catalog, engine.warehouse_conninfo, backups, SQL_DIR).key)
        trips.append(_counts(env, "wh")["trips"])
    assert trips[0] < trips[1]
    return backups, keys, trips


def test_an_archive_replaced_under_its_key_is_refused_and_nothing_is_restored(env: Env) -> None:
    """The storage keys can swap an archive but not its ledger line: restore compares them."""
    backups, (older, newer), (older_trips, newer_trips) = _backed_up(env, rows=200)
    with backups.storage.open_read(older) as data:
        swapped = env.stack.state_dir / "swapped.dump"
        swapped.write_bytes(data.read())
    backups.storage.publish(swapped, newer)  # the older archive, published as the newer one
    env.query(
        "wh", "DELETE FROM fleet_bronze.trips WHERE trip_id IN (SELECT min(trip_id) FROM fleet_bronze.trips)"
    )

    recorded = rf"backup {newer}: its sha256 is [0-9a-f]{{64}} but [0-9a-f]{{64}} was recorded"
    with pytest.raises(BackupError, match=recorded):
        restore(env.engine().catalog, "latest", backups, WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]
    assert _counts(env, "wh")["trips"] == newer_trips - 1, "refused before anything was touched"

    restore(env.engine().catalog, older, backups, WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]
    assert _counts(env, "wh")["trips"] == older_trips


def test_latest_is_the_newest_archive_with_a_ledger_line(env: Env) -> None:
    backups, (_, newer), _ = _backed_up(env, rows=200)
    planted = backups.key("fleet", "20990101_000000_000000_UTC.dump")
    with backups.storage.open_read(newer) as data:
        copy = env.stack.state_dir / "planted.dump"
        copy.write_bytes(data.read())
    backups.storage.publish(copy, planted)  # sorts last, but nothing vouches for it
    engine = env.engine()

    restore(engine.catalog, "latest", backups, WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]

    recorded = ledger(engine.catalog, engine.warehouse_conninfo, SQL_DIR, list_backups(backups, "fleet"))
    assert planted not in recorded
    assert newer in recorded


def test_the_owner_may_add_ledger_lines_but_never_change_or_remove_one(env: Env) -> None:
    _, (older, _), _ = _backed_up(env, rows=200)
    owner = env.engine().warehouse_conninfo
    attempts = {
        "UPDATE fleet_ledger.backups SET sha256 = repeat('0', 64)": "permission denied",
        "DELETE FROM fleet_ledger.backups": "permission denied",
        "TRUNCATE fleet_ledger.backups": "permission denied",
        "DROP TABLE fleet_ledger.backups": "must be owner",
        f"INSERT INTO fleet_ledger.backups (key, sha256, bytes) VALUES ('{older}', repeat('0', 64), 1)": "duplicate key",
        (
            f"INSERT INTO fleet_ledger.backups (key, sha256, bytes) VALUES ('{older}', repeat('0', 64), 1) "
            "ON CONFLICT (key) DO UPDATE SET sha256 = excluded.sha256"
        ): "permission denied",
    }
    for statement, refusal in attempts.items():
        with psycopg.connect(owner, autocommit=True) as conn, pytest.raises(psycopg.Error, match=refusal):
            conn.execute(statement)  # type: ignore[arg-type]
    assert env.query("wh", "SELECT count(*) FROM fleet_ledger.backups") == [(2,)]


def test_the_guard_refuses_an_owner_that_may_rewrite_its_backup_ledger(env: Env) -> None:
    env.migrate()
    env.query("wh", "GRANT UPDATE ON fleet_ledger.backups TO fleet_owner")
    with pytest.raises(
        RoleRightsError, match=r"may change or remove lines of the backup ledger fleet_ledger\.backups"
    ):
        check_roles(env.engine())
