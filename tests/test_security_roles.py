"""Security baseline (seed §12), roles: flows and commands refuse a superuser, a source role that may
write, an owner with rights beyond the pipeline's; the owner cannot reach other pipelines.

docs/security.md lists every claim with its test.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from pathlib import Path

import psycopg
import pytest

from dwh.core.catalog import load_catalog
from dwh.core.migrate import migrate
from dwh.core.settings import UrlError, WarehouseSettings
from dwh.operations.guard import RoleRightsError, excess_rights
from flows.ingest import ingest
from tests.conftest import Env, copy_pipeline, every_flow, rows_loaded, seed_fleet

pytestmark = pytest.mark.usefixtures("prefect_harness")


# --- roles -----------------------------------------------------------------------------------


def test_flows_refuse_to_start_as_a_superuser(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.migrate()
    seed_fleet(1000)
    owner_url = os.environ["DWH_WAREHOUSE_URL"]

    monkeypatch.setenv("DWH_WAREHOUSE_URL", env.warehouse_admin)
    with pytest.raises(RoleRightsError, match=r"(?s)the warehouse role 'postgres' .*  - it is a superuser\n"):
        ingest("fleet", tables=["devices"])

    monkeypatch.setenv("DWH_WAREHOUSE_URL", owner_url)
    monkeypatch.setenv("DWH_SOURCE_URL", env.source_admin)
    with pytest.raises(RoleRightsError, match=r"the source connection postgres@.* is a superuser"):
        ingest("fleet", tables=["devices"])

    # Refused before anything ran: no run row, no part.
    assert env.query("wh", "SELECT count(*) FROM fleet_control.extract_runs") == [(0,)]
    assert env.location_keys("fleet") == []


def test_flows_refuse_a_source_role_that_may_write_the_tables_they_extract(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The extract only reads somebody else's OLTP: a role that can write it is refused."""
    env.migrate()
    seed_fleet(500)
    reader_url = os.environ["DWH_SOURCE_URL"]
    assert "dwh_reader" in reader_url, "the dev stack's flows read as a SELECT-only role"

    monkeypatch.setenv("DWH_SOURCE_URL", os.environ["DWH_SEED_URL"])  # the app: it owns them
    owns = r"public\.trips: INSERT, UPDATE, DELETE, TRUNCATE \(it owns the table\)"
    with pytest.raises(
        RoleRightsError,
        match=rf"(?s)the source role 'source_app' may write .*{owns}.*DWH_ALLOW_WRITABLE_SOURCE",
    ):
        ingest("fleet", tables=["devices"])
    assert env.query("wh", "SELECT count(*) FROM fleet_control.extract_runs") == [(0,)], "refused first"

    # One right on one table is enough, and the refusal names exactly that.
    monkeypatch.setenv("DWH_SOURCE_URL", reader_url)
    env.query("source", "GRANT UPDATE ON public.alarms TO dwh_reader")
    with pytest.raises(
        RoleRightsError, match=r"(?s)'dwh_reader' may write .*\n  - public\.alarms: UPDATE\n[^-]"
    ):
        ingest("fleet", tables=["devices"])

    # An operator who accepts it gets a warning, and the run goes on.
    monkeypatch.setenv("DWH_ALLOW_WRITABLE_SOURCE", "true")
    with caplog.at_level(logging.WARNING, logger="dwh.operations.guard"):
        assert rows_loaded(ingest("fleet", tables=["devices"]))["devices"] > 0
    assert "public.alarms: UPDATE" in caplog.text


def test_every_flow_and_command_that_opens_the_warehouse_refuses_a_superuser(
    env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from dwh.cli import app  # noqa: PLC0415

    env.migrate()
    monkeypatch.setenv("DWH_WAREHOUSE_URL", env.warehouse_admin)
    refusal = r"refusing to run pipeline fleet: the warehouse role 'postgres' .* it is a superuser"
    for name, run in every_flow():
        with pytest.raises(RoleRightsError, match=rf"(?s){refusal}"):
            run()
        assert env.query("wh", "SELECT count(*) FROM fleet_control.extract_runs") == [(0,)], name
    csv = tmp_path / "devices.csv"
    csv.write_text("device_id\n1\n")
    for command in (
        ["verify", "fleet"],
        ["health", "fleet"],
        ["backup", "fleet"],
        ["datamarts", "fleet"],
        ["export-json", "fleet"],
        ["import-csv", "fleet", "devices", str(csv)],
    ):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 1, (command, result.output)
        assert re.search(rf"(?s)error: {refusal}", " ".join(result.output.split())), (command, result.output)
    assert env.query("wh", "SELECT count(*) FROM fleet_control.extract_runs") == [(0,)]
    assert env.location_keys("fleet") == [], "nothing written before the refusal"


def _every_command(tmp_path: Path) -> list[list[str]]:
    """Every CLI command that opens a database, with arguments that would make it do so."""
    csv = tmp_path / "devices.csv"
    csv.write_text("device_id\n1\n")
    return [
        ["migrate", "fleet"],
        ["seed-source", "fleet", "--rows", "10"],
        ["run", "fleet", "--table", "devices"],
        ["datamarts", "fleet"],
        ["export-json", "fleet"],
        ["verify", "fleet"],
        ["health", "fleet"],
        ["backup", "fleet"],
        ["backups", "fleet"],
        ["restore", "fleet"],
        ["import-csv", "fleet", "devices", str(csv)],
        ["blocks", "apply", "--connections"],
        ["init", "fleet", "--from-source", "--out", str(tmp_path / "fleet.yaml")],
        ["migrations", "generate", "fleet"],
        ["drift", "fleet"],
        ["preflight", "fleet"],
    ]


def test_a_malformed_url_is_an_error_naming_the_setting_never_the_password(
    env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """libpq quotes a bad percent-escape back, and in a URL that is usually the password.

    Every command and every flow, with every database URL malformed the same way: each
    fails with one line naming a setting, and the password is nowhere, not even in the
    exception a flow's Failed state and logs would carry.
    """
    from typer.testing import CliRunner  # noqa: PLC0415

    from dwh.cli import app  # noqa: PLC0415

    assert env.source_db
    secret = "s3cr%t-Passw0rd"  # noqa: S105 - a bad percent-escape libpq would quote back
    settings = ("DWH_SOURCE_URL", "DWH_SEED_URL", "DWH_WAREHOUSE_URL", "DWH_WAREHOUSE_ADMIN_URL")
    for setting in settings:
        monkeypatch.setenv(setting, f"postgresql://someone:{secret}@127.0.0.1:5432/db")
    named = re.compile(
        r"error: (dwh \w+ fleet: )?(" + "|".join(settings) + r") is not a valid PostgreSQL URL"
    )
    for command in _every_command(tmp_path):
        result = CliRunner().invoke(app, command)
        raised = "".join(traceback.format_exception(result.exception)) if result.exception else ""
        assert "s3cr" not in result.output + raised, command
        assert result.exit_code == 1, (command, result.output, raised)
        assert named.search(" ".join(result.output.split())), (command, result.output)
    for name, run in every_flow():
        with pytest.raises(UrlError) as caught:
            run()
        flat = "".join(traceback.format_exception(caught.value))
        assert "s3cr" not in flat, name
        assert "is not a valid PostgreSQL URL" in flat, name


def test_flows_refuse_an_owner_role_with_rights_beyond_the_pipelines(env: Env) -> None:
    env.migrate()
    counts = seed_fleet(1000)
    env.query("wh", "CREATE TABLE public.app_users (user_id int PRIMARY KEY, email text)")
    env.query("wh", "GRANT SELECT, INSERT ON public.app_users TO fleet_owner")
    # Roles are cluster-wide (shared with other tests): always take these back.
    try:
        env.query("wh", "GRANT pg_read_all_data TO fleet_owner")
        env.query("wh", "ALTER ROLE fleet_owner CREATEROLE")
        with pytest.raises(RoleRightsError) as caught:
            ingest("fleet", tables=["devices"])
    finally:
        env.query("wh", "REVOKE pg_read_all_data FROM fleet_owner")
        env.query("wh", "ALTER ROLE fleet_owner NOCREATEROLE")
    message = str(caught.value)
    assert "the warehouse role 'fleet_owner'" in message
    for problem in (
        "it may create roles (CREATEROLE)",
        "it is a member of role pg_read_all_data",
        "it has INSERT on public.app_users",
        "it has SELECT on public.app_users",
    ):
        assert f"  - {problem}\n" in message
    assert "The flows must connect as fleet_owner" in message
    assert env.query("wh", "SELECT count(*) FROM fleet_control.extract_runs") == [(0,)]

    env.query("wh", "REVOKE ALL ON public.app_users FROM fleet_owner")
    assert rows_loaded(ingest("fleet", tables=["devices"])) == {"devices": counts["devices"]}


def test_owner_role_cannot_read_or_write_another_pipelines_schemas_or_public_tables(
    env: Env, tmp_path: Path
) -> None:
    pipelines, sql_dir = copy_pipeline(tmp_path, "neighbour")
    settings = WarehouseSettings()  # type: ignore[call-arg]
    catalogs = {name: load_catalog(name, pipelines) for name in ("fleet", "neighbour")}
    for catalog in catalogs.values():
        migrate(catalog, settings, sql_dir)
    env.query("wh", "CREATE TABLE public.app_secrets (id int, secret text)")
    env.query("wh", "INSERT INTO public.app_secrets VALUES (1, 'payroll')")

    for me, other in (("fleet", "neighbour"), ("neighbour", "fleet")):
        with psycopg.connect(settings.owner_conninfo(me), autocommit=True) as conn:
            assert excess_rights(conn, catalogs[me], sql_dir) == []  # the guard finds it fit
            conn.execute(f"SELECT count(*) FROM {me}_bronze.trips")  # its own: yes
            for statement in (
                f"SELECT count(*) FROM {other}_bronze.trips",
                f"INSERT INTO {other}_bronze.trips (trip_id, device_id, start_time, recorded_at) VALUES (1, 1, now(), now())",
                f"TRUNCATE {other}_bronze.devices",
                f"SELECT * FROM {other}_control.extract_runs",
                f"UPDATE {other}_control.extract_watermarks SET last_extracted_at = now()",
                f"SELECT * FROM {other}_control.v_table_freshness",
                "SELECT * FROM public.app_secrets",
                "INSERT INTO public.app_secrets VALUES (2, 'x')",
                "CREATE TABLE public.sneaky (x int)",
                "CREATE SCHEMA sneaky",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
        with psycopg.connect(settings.ro_conninfo(me), autocommit=True) as conn:
            conn.execute(f"SELECT count(*) FROM {me}_bronze.trips")
            for statement in (
                f"SELECT count(*) FROM {other}_bronze.trips",
                "SELECT * FROM public.app_secrets",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
