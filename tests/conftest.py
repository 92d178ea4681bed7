"""Shared fixtures: one real PostGIS cluster, S3 API (moto server) and Prefect per session.

Every test that touches data gets its own source and warehouse databases (cloned from
a PostGIS template in milliseconds) and its own storage prefix, so tests are
independent and can run in any order.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

import devstack
from devstack.postgres import prefect_database_url
from dwh.core.catalog import Catalog, load_catalog
from dwh.core.migrate import migrate
from dwh.core.settings import PROJECT_DIR, SeedSettings, SourceSettings, StorageSettings, WarehouseSettings
from dwh.ingest.engine import Engine
from dwh.ingest.report import IngestSummary
from dwh.ingest.storage import open_location
from dwh.onboarding.seed import seed_source
from tests.failpoints import failpoints  # noqa: F401 - fixture: file-armed failpoints
from tests.fan_out import (  # noqa: F401 - fixtures: a test in both ingest modes
    fan_out_first,
    fan_out_pool,
    ingest_mode,
    stop_between_fan_out_runs,
)
from tests.prefect_server import Server, harness
from tests.webhook import notify_env, prefect_api, receiver  # noqa: F401 - fixtures: the webhook receiver and its block

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Before any test imports Prefect: a private home, no analytics. Under pytest-xdist
# (scripts/test) each worker runs a session of its own (stack, Prefect server, process
# workers) and gets its own home, removed when it exits. A worker also starts with
# COLUMNS=80 set, which would fix the width of the CLI's module-level Rich consoles at
# import; a plain pytest run leaves it to each invocation, and the CLI tests pass
# COLUMNS for theirs.
if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix=f"dwh-prefect-home-{worker}-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)
elif "PREFECT_HOME" not in os.environ:
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="dwh-prefect-home-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

SQL_DIR = PROJECT_DIR / "sql"
PIPELINES_DIR = PROJECT_DIR / "pipelines"


# Fixtures that start or reach a real service (PostgreSQL/PostGIS, moto, a Prefect
# server). A test that uses one, directly or through another fixture, or starts its own
# stack (`devstack`), is marked `integration`; `pytest -m "not integration"` is the lane
# that needs no service at all.
SERVICE_FIXTURES = frozenset({"stack", "private_stack", "prefect_harness", "prefect_server", "env"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses = set(getattr(item, "fixturenames", ()))
        if uses & SERVICE_FIXTURES or item.get_closest_marker("devstack"):
            item.add_marker(pytest.mark.integration)
    fan_out_first(items)


def pytest_runtest_setup(item: pytest.Item) -> None:
    stop_between_fan_out_runs(item)


@dataclass(frozen=True)
class Stack:
    state_dir: Path
    env: dict[str, str]

    @property
    def admin_url(self) -> str:
        return self.env["DWH_WAREHOUSE_ADMIN_URL"]

    def admin_conninfo(self, dbname: str) -> str:
        return psycopg.conninfo.make_conninfo(self.admin_url, dbname=dbname)

    def s3_client(self, endpoint: str | None = None, **config: Any) -> S3Client:
        """A plain boto3 client of the stack's moto (or of `endpoint`, e.g. a TcpCut in front)."""
        import boto3  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415

        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.env["AWS_ENDPOINT_URL"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.env["AWS_DEFAULT_REGION"],
            config=Config(**config),
        )


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    state_dir = Path(tempfile.gettempdir()) / f"dwh-test-{os.getpid()}"
    state_dir.mkdir(mode=0o755, exist_ok=True)
    try:
        devstack.up(state_dir, s3=True)
        yield Stack(state_dir, devstack.env(state_dir))
    finally:
        devstack.down(state_dir, purge=True)


@pytest.fixture(scope="session")
def private_stack() -> Iterator[Stack]:
    """A second throwaway stack (PostgreSQL + moto) that tests may stop, restart and reconfigure.

    Only the fault and security tests that take a server down use it (see
    tests/outages.py), so the session's `stack` stays up for every other test.
    """
    state_dir = Path(tempfile.mkdtemp(prefix="dwh-private-"))
    state_dir.chmod(0o755)  # the postgres OS user must reach it
    try:
        devstack.up(state_dir, s3=True)
        yield Stack(state_dir, devstack.env(state_dir))
    finally:
        devstack.down(state_dir, purge=True)


@pytest.fixture(scope="session")
def prefect_harness(stack: Stack) -> Iterator[None]:
    """One Prefect test server for the whole session (flow tests opt in), on the stack's PostgreSQL."""
    from prefect.settings import temporary_settings  # noqa: PLC0415

    name = "prefect_harness"
    with psycopg.connect(stack.admin_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    record = devstack.load_record(stack.state_dir)
    assert record is not None, stack.state_dir
    database_url = prefect_database_url(record.services["postgres"].port, record.passwords, name)
    with (
        harness(database_url, startup_timeout=60),
        temporary_settings(updates={"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": None}),  # type: ignore[dict-item]
    ):
        yield


@pytest.fixture(scope="session")
def prefect_server(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """A real `prefect server start` added to the session's stack (stopped with it)."""
    devstack.up(stack.state_dir, s3=True, prefect=True)
    api_url = devstack.env(stack.state_dir)["PREFECT_API_URL"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DWH_", "AWS_"))}
    env |= {
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-home")),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_CLI_PROMPT": "false",
        "PREFECT_CLI_COLORS": "false",
        "PREFECT_CLI_WRAP_LINES": "false",
    }
    return Server(api_url, env)


def app_conninfo() -> str:
    """The source application's own connection (it owns and writes the source tables).

    Tests write sample rows, open late transactions and idle sessions as the app; the
    flows read through DWH_SOURCE_URL, a role that may only SELECT.
    """
    return SeedSettings().conninfo(SourceSettings())  # type: ignore[call-arg]


def seed_fleet(rows: int = 1000) -> dict[str, int]:
    """Generate (or grow) the fleet source, as its application; returns rows per table."""
    return seed_source(app_conninfo(), "fleet", rows=rows, sql_dir=SQL_DIR)  # type: ignore[call-arg]


def rows_loaded(summary: IngestSummary) -> dict[str, int]:
    """Rows each table of an ingest run loaded into bronze."""
    return {t.table: t.rows_loaded for t in summary.tables}


@dataclass
class Env:
    """One test's own databases and storage, with the DWH_* environment pointing at them."""

    stack: Stack
    source_db: str
    warehouse_db: str
    storage_url: str
    pipeline: str = "fleet"

    @property
    def source_admin(self) -> str:
        return self.stack.admin_conninfo(self.source_db)

    @property
    def warehouse_admin(self) -> str:
        return self.stack.admin_conninfo(self.warehouse_db)

    def catalog(self) -> Catalog:
        return load_catalog(self.pipeline, Path(os.environ.get("DWH_PIPELINES_DIR", PIPELINES_DIR)))

    def engine(self) -> Engine:
        return Engine.from_settings(self.pipeline)

    def migrate(self) -> None:
        migrate(self.catalog(), WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]

    def query(self, db: str, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        conninfo = self.source_admin if db == "source" else self.warehouse_admin
        with psycopg.connect(conninfo, autocommit=True) as conn:
            cur = conn.execute(statement, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def count(self, db: str, relation: str) -> int:
        """Rows of a relation; a bare table name is the source's (`public`) or bronze's table."""
        if "." not in relation:
            relation = f"public.{relation}" if db == "source" else f"{self.pipeline}_bronze.{relation}"
        return int(self.query(db, f"SELECT count(*) FROM {relation}")[0][0])  # type: ignore[arg-type]

    def watermark(self, table: str) -> datetime:
        """The table's `last_extracted_at` in the warehouse's control schema."""
        row = self.query(
            "wh",
            f"SELECT last_extracted_at FROM {self.pipeline}_control.extract_watermarks WHERE table_name = %s",
            (table,),
        )
        return row[0][0]  # type: ignore[return-value]

    def location_keys(self, *parts: str) -> list[str]:
        location = open_location(StorageSettings())
        return location.storage.list(location.key(*parts))


def _create_databases(stack: Stack, source_db: str, warehouse_db: str) -> None:
    """The source belongs to the app role (as in production); the warehouse to the admin."""
    statement = "CREATE DATABASE {} TEMPLATE template_postgis OWNER {}"
    with psycopg.connect(stack.admin_conninfo("postgres"), autocommit=True) as conn:
        for name, owner in ((source_db, "source_app"), (warehouse_db, "postgres")):
            conn.execute(sql.SQL(statement).format(sql.Identifier(name), sql.Identifier(owner)))


def _drop_databases(stack: Stack, names: list[str]) -> None:
    with psycopg.connect(stack.admin_conninfo("postgres"), autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _url_with_db(url: str, dbname: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{quote(dbname)}"


@pytest.fixture(params=["file"])
def storage_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def env(stack: Stack, storage_kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Env]:
    tag = uuid.uuid4().hex[:10]
    source_db, warehouse_db = f"t_{tag}_src", f"t_{tag}_wh"
    _create_databases(stack, source_db, warehouse_db)
    if storage_kind == "s3":
        storage_url = f"s3://dwh-dev/tests/{tag}"
        for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            monkeypatch.setenv(name, stack.env[name])
    else:
        storage_url = f"file://{tmp_path / 'storage'}"
    monkeypatch.setenv("DWH_SOURCE_URL", _url_with_db(stack.env["DWH_SOURCE_URL"], source_db))
    monkeypatch.setenv("DWH_SEED_URL", _url_with_db(stack.env["DWH_SEED_URL"], source_db))
    monkeypatch.setenv("DWH_WAREHOUSE_URL", _url_with_db(stack.env["DWH_WAREHOUSE_URL"], warehouse_db))
    monkeypatch.setenv(
        "DWH_WAREHOUSE_ADMIN_URL", _url_with_db(stack.env["DWH_WAREHOUSE_ADMIN_URL"], warehouse_db)
    )
    monkeypatch.setenv("DWH_WAREHOUSE_OWNER_PASSWORD", stack.env["DWH_WAREHOUSE_OWNER_PASSWORD"])
    monkeypatch.setenv("DWH_WAREHOUSE_RO_PASSWORD", stack.env["DWH_WAREHOUSE_RO_PASSWORD"])
    monkeypatch.setenv("DWH_STORAGE_URL", storage_url)
    monkeypatch.setenv("DWH_PIPELINES_DIR", str(PIPELINES_DIR))
    try:
        yield Env(stack, source_db, warehouse_db, storage_url)
    finally:
        _drop_databases(stack, [source_db, warehouse_db])
        if storage_kind == "file":
            shutil.rmtree(tmp_path / "storage", ignore_errors=True)


@pytest.fixture
def osm(env: Env) -> Env:
    """The test's own warehouse migrated for osm_notes, and the source tables (empty)."""
    env.pipeline = "osm_notes"
    env.migrate()
    with psycopg.connect(app_conninfo()) as conn:
        conn.execute((SQL_DIR / "osm_notes" / "source" / "schema.sql").read_bytes())
    return env


def copy_pipeline(tmp_path: Path, name: str) -> tuple[Path, Path]:
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


def every_flow(pipeline: str = "fleet") -> list[tuple[str, Callable[[], object]]]:
    """Every flow of the product, ready to run for `pipeline` (imports Prefect: only when asked)."""
    from flows.backup import backup_pipeline  # noqa: PLC0415
    from flows.datamarts import datamarts  # noqa: PLC0415
    from flows.etl import etl  # noqa: PLC0415
    from flows.export_json import export_json  # noqa: PLC0415
    from flows.health import health  # noqa: PLC0415
    from flows.ingest import ingest  # noqa: PLC0415
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
