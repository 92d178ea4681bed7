"""Security baseline (seed §12): least-privilege roles, secrets kept out of everything a
run produces, verified TLS, an authenticated Prefect API and a prefix-scoped S3 policy.

| requirement | proven by |
|---|---|
| flows refuse a superuser (warehouse or source) | test_flows_refuse_to_start_as_a_superuser |
| flows refuse a role with rights beyond the pipeline's | test_flows_refuse_an_owner_role_with_rights_beyond_the_pipelines |
| owner cannot touch other pipelines' schemas or public tables | test_owner_role_cannot_read_or_write_another_pipelines_schemas_or_public_tables |
| ro reads bronze and views only | test_migrate.py::test_ro_role_reads_bronze_and_views_but_writes_nothing, plus the ro checks here |
| secrets never in logs, parameters, results, artifacts, events, run log, errors | test_secrets_never_reach_prefect_storage_the_run_log_or_error_text |
| sslmode=verify-full against a server signed by a test CA | test_verify_full_tls_with_a_test_ca_runs_the_pipeline_and_refuses_impostors |
| Prefect API auth: anonymous refused, workers with the setting work | test_prefect_api_refuses_anonymous_calls_and_workers_with_the_auth_string_run_flows |
| S3 policy scoped to the project prefix | test_s3_policy_allows_every_call_a_run_makes_and_nothing_outside_its_prefix |
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from botocore.client import BaseClient
from psycopg import sql

import devstack
from dwh.core.catalog import load_catalog
from dwh.core.migrate import migrate
from dwh.core.settings import UrlError, WarehouseSettings
from dwh.ingest.report import IngestFailedError
from dwh.operations.guard import RoleRightsError, excess_rights
from flows.ingest import ingest
from tests.conftest import PIPELINES_DIR, SQL_DIR, Env, Stack, rows_loaded, seed_fleet
from tests.outages import split_env
from tests.s3_policy import render_policy

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _copy_pipeline(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """Catalog and SQL of a pipeline `name` that is the fleet pipeline under another name."""
    pipelines, sql_dir = tmp_path / "pipelines", tmp_path / "sql"
    pipelines.mkdir(exist_ok=True)
    text = (PIPELINES_DIR / "fleet.yaml").read_text()
    (pipelines / "fleet.yaml").write_text(text)
    (pipelines / f"{name}.yaml").write_text(text.replace("pipeline: fleet", f"pipeline: {name}"))
    if not sql_dir.exists():
        shutil.copytree(SQL_DIR, sql_dir)
    shutil.copytree(sql_dir / "fleet", sql_dir / name)
    return pipelines, sql_dir


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


def _every_flow(pipeline: str = "fleet") -> list[tuple[str, Callable[[], object]]]:
    from flows.backup import backup_pipeline  # noqa: PLC0415
    from flows.datamarts import datamarts  # noqa: PLC0415
    from flows.etl import etl  # noqa: PLC0415
    from flows.export_json import export_json  # noqa: PLC0415
    from flows.health import health  # noqa: PLC0415
    from flows.maintenance import maintenance  # noqa: PLC0415
    from flows.verify import verify_pipeline  # noqa: PLC0415

    return [
        ("ingest", lambda: ingest(pipeline)),
        ("etl", lambda: etl(pipeline)),
        ("datamarts", lambda: datamarts(pipeline)),
        ("export_json", lambda: export_json(pipeline)),
        ("health", lambda: health(pipeline)),
        ("verify", lambda: verify_pipeline(pipeline)),
        ("backup", lambda: backup_pipeline(pipeline)),
        ("maintenance", lambda: maintenance(pipeline)),
    ]


def test_every_flow_and_command_that_opens_the_warehouse_refuses_a_superuser(
    env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from dwh.cli import app  # noqa: PLC0415

    env.migrate()
    monkeypatch.setenv("DWH_WAREHOUSE_URL", env.warehouse_admin)
    refusal = r"refusing to run pipeline fleet: the warehouse role 'postgres' .* it is a superuser"
    for name, run in _every_flow():
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
    for name, run in _every_flow():
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
    pipelines, sql_dir = _copy_pipeline(tmp_path, "neighbour")
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


# --- secrets ---------------------------------------------------------------------------------


def _prefect_surfaces(since: datetime) -> dict[str, str]:
    """Everything the Prefect API holds about the runs that started after `since`, as text."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.client.schemas.filters import (  # noqa: PLC0415
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterStartTime,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.events.filters import EventFilter, EventOccurredFilter  # noqa: PLC0415
    from prefect.events.worker import EventsWorker  # noqa: PLC0415
    from prefect.logging.handlers import APILogWorker  # noqa: PLC0415

    # Logs and events reach the API in background batches: send what is queued, or the
    # search would miss the last seconds of the run (the failure it must find among them).
    APILogWorker.drain_all(timeout=30)
    EventsWorker.drain_all(timeout=30)
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since))
        )
        ids = [r.id for r in runs]
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))
        )
        page = client.read_events(EventFilter(occurred=EventOccurredFilter(since=since)), limit=50)
        events = list(page.events)
        while page.next_page is not None:
            page = client.read_events_page(str(page.next_page))
            events.extend(page.events)
        blocks = client.read_block_documents(include_secrets=False)  # what the UI shows
    surfaces = {
        "flow runs (parameters, states, messages)": [r.model_dump_json() for r in runs],
        "task runs (inputs, states, messages)": [t.model_dump_json() for t in tasks],
        "logs": [log.model_dump_json() for log in logs],
        "artifacts": [a.model_dump_json() for a in artifacts],
        "events": [e.model_dump_json() for e in events],
        "block documents": [b.model_dump_json() for b in blocks],
    }
    for name, items in surfaces.items():
        assert items, f"nothing read from Prefect's {name}: the search would prove nothing"
    return {name: "\n".join(items) for name, items in surfaces.items()}


def _bucket_text(env: Env) -> str:
    """Every object the runs left under the test's prefix: CSV parts, results, backups."""
    client = boto3.client("s3")
    bucket, _, prefix = env.storage_url.removeprefix("s3://").partition("/")
    # `<prefix>-backups/` too: the archives (DWH_BACKUP_URL's default) are searched as well.
    objects = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    keys = [o["Key"] for o in objects]
    assert any("/prefect-results/" in k for k in keys), keys
    return "\n".join(
        f"{k}\n" + client.get_object(Bucket=bucket, Key=k)["Body"].read().decode(errors="replace")
        for k in keys
    )


def _prefect_database() -> str:
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL  # noqa: PLC0415

    path = Path(str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value()).split(":///", 1)[1])
    files = [p for p in path.parent.glob(f"{path.name}*") if p.is_file()]
    assert files, path
    return "\n".join(p.read_bytes().decode(errors="replace") for p in files)


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


def _operate_on_vault(errors: list[str]) -> str:
    """Run every flow but the ingest, then every command, on `vault`; return the commands' output."""
    from typer.testing import CliRunner  # noqa: PLC0415

    from dwh.cli import app  # noqa: PLC0415

    for name, run in _every_flow("vault"):
        if name == "ingest":
            continue
        try:
            run()
        except Exception as exc:  # noqa: BLE001 - any outcome is searched, none is expected
            errors.append(f"{name}: {_describe(exc)}")
    outputs = []
    for command in (
        ["verify", "vault"], ["health", "vault"], ["backup", "vault"], ["backups", "vault"],
        ["drift", "vault"], ["preflight", "vault"],
    ):  # fmt: skip
        result = CliRunner().invoke(app, command)
        raised = _describe(result.exception) if result.exception else ""
        outputs.append(f"$ dwh {' '.join(command)} -> {result.exit_code}\n{result.output}{raised}")
    return "\n".join(outputs)


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
def test_secrets_never_reach_prefect_storage_the_run_log_or_error_text(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    since = datetime.now(UTC)
    # A pipeline of its own, so its role passwords are unique to this test and a hit
    # anywhere (even in the whole Prefect database) can only come from this run.
    pipelines, sql_dir = _copy_pipeline(tmp_path, "vault")
    unique = {
        "owner password": secrets.token_urlsafe(24),
        "ro password": secrets.token_urlsafe(24),
        "source password": secrets.token_urlsafe(24),
        "S3 secret key": secrets.token_urlsafe(30),
    }
    monkeypatch.setenv("DWH_PIPELINES_DIR", str(pipelines))
    monkeypatch.setenv("DWH_SQL_DIR", str(sql_dir))
    monkeypatch.setenv("DWH_WAREHOUSE_OWNER_PASSWORD", unique["owner password"])
    monkeypatch.setenv("DWH_WAREHOUSE_RO_PASSWORD", unique["ro password"])
    key_id = f"AKIA{secrets.token_hex(8).upper()}"  # an identifier, not a secret: a canary
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", unique["S3 secret key"])
    migrate(load_catalog("vault", pipelines), WarehouseSettings(), sql_dir)  # type: ignore[call-arg]
    seed_fleet(1000)
    # The source is read by a read-only role with its own password, as in production.
    reader = f"vault_reader_{secrets.token_hex(4)}"
    with psycopg.connect(env.source_admin, autocommit=True) as conn:
        verifier = conn.pgconn.encrypt_password(
            unique["source password"].encode(), reader.encode(), b"scram-sha-256"
        )
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(reader), sql.Literal(verifier.decode())
            )
        )
        for grant in (
            "GRANT pg_read_all_stats TO {r}",
            "GRANT CONNECT ON DATABASE {db} TO {r}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {r}",
        ):
            conn.execute(sql.SQL(grant).format(r=sql.Identifier(reader), db=sql.Identifier(env.source_db)))
    monkeypatch.setenv(
        "DWH_SOURCE_URL",
        psycopg.conninfo.make_conninfo(
            os.environ["DWH_SOURCE_URL"], user=reader, password=unique["source password"]
        ),
    )
    # trips fails to load: its error lands in the run log, the flow states and the logs.
    env.query("source", "ALTER TABLE public.trips ALTER COLUMN max_speed_kmh TYPE text")
    env.query("source", "UPDATE public.trips SET max_speed_kmh = 'fast' WHERE trip_id = 5")
    admin_password = str(psycopg.conninfo.conninfo_to_dict(env.warehouse_admin)["password"])
    errors: list[str] = []
    try:
        with pytest.raises(IngestFailedError) as failed:
            ingest("vault", tables=["devices", "trips", "alarms"])
        errors.append(_describe(failed.value))
        errors += [t.error or "" for t in failed.value.summary.tables]
        # Every other flow and command of the pipeline, whatever their outcome (verify
        # fails on the failed table): their errors, output and logs are searched too.
        commands = _operate_on_vault(errors)
        # And a run refused because it was pointed at the superuser.
        monkeypatch.setenv("DWH_WAREHOUSE_URL", env.warehouse_admin)
        with pytest.raises(RoleRightsError) as refused:
            ingest("vault", tables=["devices"])
        errors.append(_describe(refused.value))
    finally:
        with psycopg.connect(env.source_admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(sql.Identifier(reader)))

    assert {t.table: t.status for t in failed.value.summary.tables} == {
        "devices": "loaded",
        "trips": "failed",
        "alarms": "loaded",
    }
    captured = capfd.readouterr()
    surfaces = {
        "exception text": "\n".join(errors),
        "console output": captured.out + captured.err,
        "command output": commands,
        "run log": "\n".join(str(row) for row in env.query("wh", "SELECT * FROM vault_control.extract_runs")),
        "object storage (parts, persisted results)": _bucket_text(env),
        **_prefect_surfaces(since),
    }
    # The search reads real content: the failure it must describe is in there.
    for name in ("exception text", "run log", "logs", "flow runs (parameters, states, messages)"):
        assert "invalid input syntax for type numeric" in surfaces[name], name
    assert "-backups/vault/" in surfaces["object storage (parts, persisted results)"], "a backup was taken"
    assert "$ dwh backups vault -> 0" in commands
    assert key_id in surfaces["block documents"]  # the result-storage block was read, unmasked fields and all

    every = {**unique, "superuser password": admin_password}
    leaks = [
        (what, where) for where, text in surfaces.items() for what, value in every.items() if value in text
    ]
    assert leaks == [], f"secrets found (what, where): {leaks}"
    database = _prefect_database()
    assert "invalid input syntax for type numeric" in database
    assert [what for what, value in unique.items() if value in database] == [], "in the Prefect database"


# --- TLS ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tls:
    ca: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_ca(folder: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
        cwd=folder,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tls(private_stack: Stack) -> Iterator[Tls]:
    """The private cluster serving a certificate for 127.0.0.1 signed by a CA made here."""
    folder = private_stack.state_dir / "tls"
    folder.mkdir(exist_ok=True)
    _make_ca(folder, "test-ca")
    _make_ca(folder, "other-ca")
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
        cwd=folder,
    )  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName = IP:127.0.0.1\n")
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "test-ca.crt", "-CAkey", "test-ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext",
        cwd=folder,
    )  # fmt: skip
    for path in (folder, *folder.iterdir()):
        shutil.chown(path, devstack.DB_OS_USER, devstack.DB_OS_USER)
    (folder / "server.key").chmod(0o600)
    admin = private_stack.admin_conninfo("postgres")

    def configure(statements: list[str]) -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)
            conn.execute("SELECT pg_reload_conf()")

    configure(
        [
            f"ALTER SYSTEM SET ssl_cert_file = '{folder / 'server.crt'}'",
            f"ALTER SYSTEM SET ssl_key_file = '{folder / 'server.key'}'",
            "ALTER SYSTEM SET ssl = on",
        ]
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(admin, sslmode="require").close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        yield Tls(folder / "test-ca.crt", folder / "other-ca.crt")
    finally:
        configure(
            ["ALTER SYSTEM RESET ssl", "ALTER SYSTEM RESET ssl_cert_file", "ALTER SYSTEM RESET ssl_key_file"]
        )


def test_verify_full_tls_with_a_test_ca_runs_the_pipeline_and_refuses_impostors(
    private_stack: Stack, tls: Tls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = f"file://{tmp_path / 'storage'}"
    query = f"sslrootcert={tls.ca}"
    with split_env(
        monkeypatch, storage, source=private_stack, warehouse=private_stack, url_query=query
    ) as env:
        monkeypatch.setenv("DWH_SOURCE_SSLMODE", "verify-full")
        monkeypatch.setenv("DWH_WAREHOUSE_SSLMODE", "verify-full")
        env.migrate()
        counts = seed_fleet(1000)

        summary = ingest("fleet", tables=["trips"])

        assert rows_loaded(summary) == {"trips": counts["trips"]}
        engine = env.engine()
        for conninfo in (engine.source_conninfo, engine.warehouse_conninfo):
            params = psycopg.conninfo.conninfo_to_dict(conninfo)
            assert (params["sslmode"], params["sslrootcert"]) == ("verify-full", str(tls.ca))
            with psycopg.connect(conninfo) as conn:
                assert conn.execute(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                ).fetchone() == (True,)

        impostor = psycopg.conninfo.make_conninfo(engine.warehouse_conninfo, sslrootcert=str(tls.other_ca))
        with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
            psycopg.connect(impostor).close()
        wrong_name = psycopg.conninfo.make_conninfo(engine.warehouse_conninfo, host="localhost")
        with pytest.raises(psycopg.OperationalError, match='does not match host name "localhost"'):
            psycopg.connect(wrong_name).close()


# --- Prefect API authentication --------------------------------------------------------------


@dataclass(frozen=True)
class AuthedServer:
    api_url: str
    auth_string: str
    home: Path


@pytest.fixture(scope="module")
def authed_prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthedServer]:
    """A Prefect server started as docs/security.md says: PREFECT_SERVER_API_AUTH_STRING set."""
    home = tmp_path_factory.mktemp("prefect-auth")
    auth = f"dwh:{secrets.token_urlsafe(18)}"
    port = devstack.free_port()
    variables = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    variables |= {
        "PREFECT_HOME": str(home / "server"),
        "PREFECT_SERVER_API_AUTH_STRING": auth,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [
            str(devstack.venv_script("prefect")),
            "server",
            "start",
            "--host",
            devstack.HOST,
            "--port",
            str(port),
        ],
        env=variables,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://{devstack.HOST}:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while devstack.http_status(f"{api}/health") != 200:  # health stays open for probes
            assert server.poll() is None, (home / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Prefect server did not start"
            time.sleep(0.5)
        yield AuthedServer(api, auth, home)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _api_status(url: str, auth: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=b"{}", method="POST", headers=headers)  # noqa: S310
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


PROBE_FLOW = """
from prefect import flow


@flow(log_prints=True)
def probe() -> str:
    print("probe ran behind API auth")
    return "ok"
"""

DEPLOY_AND_RUN = """
import sys
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments import run_deployment

with get_client(sync_client=True) as client:
    client.create_work_pool(WorkPoolCreate(name="auth-probe", type="process"), overwrite=True)
flow.from_source(source=sys.argv[1], entrypoint="probe_flow.py:probe").deploy(
    name="probe", work_pool_name="auth-probe", print_next_steps=False
)
print(run_deployment("probe/probe", timeout=0).id)
"""


def test_prefect_api_refuses_anonymous_calls_and_workers_with_the_auth_string_run_flows(
    authed_prefect: AuthedServer,
) -> None:
    flows = f"{authed_prefect.api_url}/flows/filter"
    assert _api_status(flows, None) == 401
    assert _api_status(flows, "dwh:wrong") == 401
    assert _api_status(flows, authed_prefect.auth_string) == 200

    source = authed_prefect.home / "flow"
    source.mkdir()
    (source / "probe_flow.py").write_text(PROBE_FLOW)
    client_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    client_env |= {
        "PREFECT_HOME": str(authed_prefect.home / "client"),
        "PREFECT_API_URL": authed_prefect.api_url,
    }
    with_auth = {**client_env, "PREFECT_API_AUTH_STRING": authed_prefect.auth_string}
    worker = [str(devstack.venv_script("prefect")), "worker", "start", "--pool", "auth-probe", "--run-once"]

    deploy = subprocess.run(
        [sys.executable, "-c", DEPLOY_AND_RUN, str(source)],
        env=with_auth,
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert deploy.returncode == 0, deploy.stderr[-3000:]
    flow_run_id = deploy.stdout.strip().splitlines()[-1]

    anonymous = subprocess.run(
        worker, env=client_env, capture_output=True, text=True, timeout=180, check=False
    )
    assert anonymous.returncode != 0
    assert re.search(r"401\s+Unauthorized", anonymous.stdout + anonymous.stderr)

    authorised = subprocess.run(
        worker, env=with_auth, capture_output=True, text=True, timeout=300, check=False
    )
    assert authorised.returncode == 0, (authorised.stdout + authorised.stderr)[-3000:]
    assert "probe ran behind API auth" in authorised.stdout + authorised.stderr

    # The flow run itself (a child process of the worker) reported back through the auth.
    request = urllib.request.Request(  # noqa: S310
        f"{authed_prefect.api_url}/flow_runs/{flow_run_id}",
        headers={"Authorization": "Basic " + base64.b64encode(authed_prefect.auth_string.encode()).decode()},
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
        assert json.load(response)["state"]["type"] == "COMPLETED"


# --- S3 policy -----------------------------------------------------------------------------------


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    statements = policy["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _conditions_hold(conditions: dict[str, dict[str, str | list[str]]], context: dict[str, str]) -> bool:
    for operator, tests in conditions.items():
        assert operator in {"StringLike", "StringEquals"}, f"this evaluator does not know {operator}"
        for key, patterns in tests.items():
            if key not in context:
                return False
            match = fnmatchcase if operator == "StringLike" else str.__eq__
            if not any(match(context[key], p) for p in _listed(patterns)):
                return False
    return True


def _allowed(policy: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> bool:
    """IAM evaluation for identity policies: default deny, an explicit Deny wins."""
    verdict = False
    for statement in _statements(policy):
        if not any(fnmatchcase(action.lower(), a.lower()) for a in _listed(statement["Action"])):
            continue
        if not any(fnmatchcase(resource, r) for r in _listed(statement["Resource"])):
            continue
        if not _conditions_hold(statement.get("Condition", {}), context):
            continue
        if statement["Effect"] == "Deny":
            return False
        verdict = True
    return verdict


def _permissions(operation: str, params: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:  # noqa: PLR0911
    """The IAM permissions an S3 API call needs (AWS's S3 action mapping)."""
    bucket = f"arn:aws:s3:::{params['Bucket']}"
    obj = f"{bucket}/{params.get('Key', '')}"
    if operation in {"ListObjectsV2", "ListObjects"}:
        return [("s3:ListBucket", bucket, {"s3:prefix": params.get("Prefix", "")})]
    if operation in {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}:
        return [("s3:PutObject", obj, {})]
    if operation in {"GetObject", "HeadObject"}:
        return [("s3:GetObject", obj, {})]
    if operation in {"CopyObject", "UploadPartCopy"}:
        copied = params["CopySource"]
        source = f"{copied['Bucket']}/{copied['Key']}" if isinstance(copied, dict) else copied.lstrip("/")
        return [("s3:GetObject", f"arn:aws:s3:::{source}", {}), ("s3:PutObject", obj, {})]
    if operation == "DeleteObject":
        return [("s3:DeleteObject", obj, {})]
    if operation == "AbortMultipartUpload":
        return [("s3:AbortMultipartUpload", obj, {})]
    if operation == "ListParts":
        return [("s3:ListMultipartUploadParts", obj, {})]
    pytest.fail(f"the pipeline made an S3 call the policy test does not know: {operation}")


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
def test_s3_policy_allows_every_call_a_run_makes_and_nothing_outside_its_prefix(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    recording: list[bool] = []
    original = BaseClient._make_api_call

    def recorded(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if recording and self.meta.service_model.service_name == "s3":
            calls.append((operation, dict(params)))
        return original(self, operation, params)

    env.migrate()
    counts = seed_fleet(1000)
    env.query("source", "ALTER TABLE public.trips ALTER COLUMN max_speed_kmh TYPE text")
    env.query("source", "UPDATE public.trips SET max_speed_kmh = 'fast' WHERE trip_id = 5")
    monkeypatch.setattr(BaseClient, "_make_api_call", recorded)
    recording.append(True)
    # A table that loads (parts move to processed/) and one whose load fails (parts stay).
    with pytest.raises(IngestFailedError):
        ingest("fleet", tables=["alarms", "trips"])
    env.query("source", "UPDATE public.trips SET max_speed_kmh = '1' WHERE trip_id = 5")
    assert rows_loaded(ingest("fleet", tables=["alarms"])) == {"alarms": 0}
    recording.clear()
    assert counts["alarms"] > 0
    operations = {operation for operation, _ in calls}
    assert {"ListObjectsV2", "PutObject", "HeadObject", "CopyObject", "DeleteObject"} <= operations

    bucket, _, prefix = env.storage_url.removeprefix("s3://").partition("/")
    policy = render_policy(bucket=bucket, prefix=prefix, export_bucket=bucket, export_prefix="public/json")
    needed = [p for operation, params in calls for p in _permissions(operation, params)]
    denied = [p for p in needed if not _allowed(policy, *p)]
    assert denied == [], f"the shipped policy would refuse these calls: {denied}"

    # Scoped: the same calls under another project's prefix are all refused...
    other = render_policy(
        bucket=bucket, prefix=f"{prefix}-other", export_bucket=bucket, export_prefix="public/json"
    )
    assert [p for p in needed if _allowed(other, *p)] == []
    # ...and nothing ever deletes the audit trail in processed/ or rejected/ (seed §5.5).
    for folder in ("processed", "rejected"):
        key = f"arn:aws:s3:::{bucket}/{prefix}/fleet/{folder}/alarms/part.csv"
        assert not _allowed(policy, "s3:DeleteObject", key, {})
    assert not _allowed(policy, "s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": ""})
    assert not _allowed(policy, "s3:GetObject", f"arn:aws:s3:::{bucket}/elsewhere/x.csv", {})
