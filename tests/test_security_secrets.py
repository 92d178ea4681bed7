"""Security baseline (seed §12), secrets: never in Prefect's storage, the run log or error text.

docs/security.md lists every claim with its test.
"""

from __future__ import annotations

import os
import secrets
import traceback
from datetime import UTC, datetime
from pathlib import Path

import boto3
import psycopg
import pytest
from psycopg import sql

from dwh.core.catalog import load_catalog
from dwh.core.migrate import migrate
from dwh.core.settings import WarehouseSettings
from dwh.ingest.report import IngestFailedError
from dwh.operations.guard import RoleRightsError
from flows.ingest import ingest
from tests.conftest import Env, copy_pipeline, every_flow, seed_fleet

pytestmark = pytest.mark.usefixtures("prefect_harness")


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
    """Every row of every table in the Prefect server's database, as COPY text."""
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL  # noqa: PLC0415

    url = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value()).replace("+asyncpg", "", 1)
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        assert len(tables) > 10, tables  # the server's schema, not an empty database
        dump = []
        for (table,) in tables:
            with conn.cursor().copy(sql.SQL("COPY {} TO STDOUT").format(sql.SQL(table))) as copy:
                dump.append(b"".join(bytes(block) for block in copy).decode(errors="replace"))
    return "\n".join(dump)


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


def _operate_on_vault(errors: list[str]) -> str:
    """Run every flow but the ingest, then every command, on `vault`; return the commands' output."""
    from typer.testing import CliRunner  # noqa: PLC0415

    from dwh.cli import app  # noqa: PLC0415

    for name, run in every_flow("vault"):
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
    pipelines, sql_dir = copy_pipeline(tmp_path, "vault")
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
