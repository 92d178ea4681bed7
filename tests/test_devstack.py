"""The throwaway dev stack, run against the real PostgreSQL, moto and Prefect."""

from __future__ import annotations

import json
import shlex
import signal
import socket
import subprocess
import tempfile
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, LiteralString

import boto3
import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from typer.testing import CliRunner

import devstack
from devstack import DevStackError, StackInfo
from devstack.cli import dev_app

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [
    pytest.mark.devstack,
    pytest.mark.skipif(
        not (devstack.PG_BIN / "initdb").exists(),
        reason=f"PostgreSQL 15 binaries are not in {devstack.PG_BIN}",
    ),
]

DOCUMENTED_KEYS = {
    "DWH_SOURCE_URL",
    "DWH_WAREHOUSE_URL",
    "DWH_WAREHOUSE_ADMIN_URL",
    "DWH_WAREHOUSE_OWNER_PASSWORD",
    "DWH_WAREHOUSE_RO_PASSWORD",
    "DWH_STORAGE_URL",
}
AWS_KEYS = {
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
}


def _new_state_dir() -> Path:
    """A short dir under the temp root that the postgres OS user can traverse.

    pytest's own tmp dirs sit under a 0700 per-user dir and are long, so postgres
    could not reach them and their socket paths could exceed the kernel limit.
    """
    path = Path(tempfile.mkdtemp(prefix="dwh-dev-"))
    path.chmod(0o755)
    return path


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = _new_state_dir()
    yield path
    devstack.down(path, purge=True)


@pytest.fixture(scope="module")
def running_stack() -> Iterator[StackInfo]:
    """One running stack (PostgreSQL only) shared by the tests that only read it."""
    path = _new_state_dir()
    try:
        yield devstack.up(path)
    finally:
        devstack.down(path, purge=True)


def _alive(pid: int) -> bool:
    """Whether a process exists; a zombie waiting for its reaper counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((devstack.HOST, port), timeout=1):
            return True
    except OSError:
        return False


def _scalar(conninfo: str, query: LiteralString) -> object:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_second_up_reuses_the_running_postgres(running_stack: StackInfo) -> None:
    again = devstack.up(running_stack.state_dir)

    assert again.started == ()
    assert again.postgres == running_stack.postgres
    assert again.passwords == running_stack.passwords


def test_env_exports_the_documented_variables(running_stack: StackInfo) -> None:
    variables = devstack.env(running_stack.state_dir)

    assert variables.keys() >= DOCUMENTED_KEYS
    assert not AWS_KEYS & variables.keys()
    assert "PREFECT_API_URL" not in variables
    assert variables["DWH_STORAGE_URL"] == f"file://{running_stack.state_dir}/storage"
    port = running_stack.postgres.port
    assert variables["DWH_WAREHOUSE_URL"] == f"postgresql://127.0.0.1:{port}/warehouse"
    assert variables["DWH_WAREHOUSE_OWNER_PASSWORD"] == running_stack.passwords.warehouse_owner
    assert variables["DWH_WAREHOUSE_RO_PASSWORD"] == running_stack.passwords.warehouse_ro


def test_source_and_warehouse_urls_connect_and_have_postgis(
    running_stack: StackInfo,
) -> None:
    variables = devstack.env(running_stack.state_dir)
    source = variables["DWH_SOURCE_URL"]
    admin = variables["DWH_WAREHOUSE_ADMIN_URL"]
    warehouse_as_superuser = make_conninfo(
        variables["DWH_WAREHOUSE_URL"],
        user="postgres",
        password=running_stack.passwords.superuser,
    )

    assert _scalar(source, "SELECT current_user") == "dwh_reader"
    assert _scalar(variables["DWH_SEED_URL"], "SELECT current_user") == "source_app"
    assert _scalar(source, "SELECT postgis_version()")
    assert _scalar(admin, "SELECT current_database()") == "warehouse"
    assert _scalar(admin, "SELECT postgis_version()")
    assert _scalar(warehouse_as_superuser, "SELECT postgis_version()")


def test_source_app_owns_source_and_the_flows_reader_only_reads_it(running_stack: StackInfo) -> None:
    """As in production: the app owns and writes its tables; the flows' role may only SELECT."""
    variables = devstack.env(running_stack.state_dir)
    app, reader = variables["DWH_SEED_URL"], variables["DWH_SOURCE_URL"]

    owner = "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'source'"
    assert _scalar(app, owner) == "source_app"
    stats = "SELECT pg_has_role(current_user, 'pg_read_all_stats', 'member')"
    assert _scalar(reader, stats) is True
    table = f"public.t_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(app, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (x int)")  # created after the stack: default privileges
        conn.execute(f"INSERT INTO {table} VALUES (1)")
    try:
        assert _scalar(reader, f"SELECT count(*) FROM {table}") == 1
        with psycopg.connect(reader) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"INSERT INTO {table} VALUES (2)")
    finally:
        with psycopg.connect(app, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {table}")


def test_template_postgis_clones_into_a_database_with_postgis(
    running_stack: StackInfo,
) -> None:
    admin = devstack.env(running_stack.state_dir)["DWH_WAREHOUSE_ADMIN_URL"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE DATABASE clone_for_test TEMPLATE template_postgis")
    clone = make_conninfo(admin, dbname="clone_for_test")
    try:
        assert _scalar(clone, "SELECT postgis_version()")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("DROP DATABASE clone_for_test")

    is_template = "SELECT datistemplate FROM pg_database WHERE datname = 'template_postgis'"
    assert _scalar(admin, is_template) is True


def test_the_superuser_socket_admits_only_the_clusters_os_user(running_stack: StackInfo) -> None:
    """No passwordless superuser for any local account: peer auth and a 0700 socket."""
    admin = devstack.env(running_stack.state_dir)["DWH_WAREHOUSE_ADMIN_URL"]
    socket_dir = Path(str(_scalar(admin, "SHOW unix_socket_directories")))
    sock = socket_dir / f".s.PGSQL.{running_stack.postgres.port}"
    assert sock.stat().st_mode & 0o777 == 0o700
    over_socket = f"host={socket_dir} port={running_stack.postgres.port} user=postgres dbname=postgres"
    with pytest.raises(psycopg.OperationalError, match="Peer authentication failed"):
        psycopg.connect(over_socket).close()  # root is not the cluster's OS user
    as_cluster_user = subprocess.run(
        ["runuser", "-u", devstack.DB_OS_USER, "--", str(devstack.PG_BIN / "psql"), over_socket, "-Atc", "SELECT 1"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert as_cluster_user.stdout.strip() == "1", as_cluster_user.stderr


def test_stack_file_is_readable_by_its_owner_only(running_stack: StackInfo) -> None:
    mode = (running_stack.state_dir / "stack.json").stat().st_mode & 0o777

    assert mode == 0o600


def test_cli_env_prints_shell_exports_of_env(running_stack: StackInfo) -> None:
    result = CliRunner().invoke(dev_app, ["env", "--state-dir", str(running_stack.state_dir)])

    assert result.exit_code == 0, result.output
    exported = {}
    for line in result.output.splitlines():
        keyword, assignment = shlex.split(line)
        assert keyword == "export"
        name, _, value = assignment.partition("=")
        exported[name] = value
    assert exported == devstack.env(running_stack.state_dir)


def test_up_with_s3_creates_the_bucket_and_exports_aws_variables(
    state_dir: Path,
) -> None:
    info = devstack.up(state_dir, s3=True)
    variables = devstack.env(state_dir)

    assert info.started == ("postgres", "moto")
    assert variables.keys() >= AWS_KEYS
    assert variables["DWH_STORAGE_URL"] == "s3://dwh-dev/dev"
    client = boto3.client(
        "s3",
        endpoint_url=variables["AWS_ENDPOINT_URL"],
        aws_access_key_id=variables["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=variables["AWS_SECRET_ACCESS_KEY"],
        region_name=variables["AWS_DEFAULT_REGION"],
    )
    client.head_bucket(Bucket="dwh-dev")


def test_down_stops_what_up_started_and_names_it(state_dir: Path) -> None:
    info = devstack.up(state_dir, s3=True)
    assert info.s3 is not None

    stopped = devstack.down(state_dir)

    assert sorted(stopped) == ["moto", "postgres"]
    for service in (info.postgres, info.s3):
        assert not _alive(service.pid), service.name
        assert not _port_open(service.port), service.name


def test_down_on_a_stack_that_is_not_up_stops_nothing(state_dir: Path) -> None:
    assert devstack.down(state_dir) == []

    devstack.up(state_dir)
    assert devstack.down(state_dir) == ["postgres"]
    assert devstack.down(state_dir) == []


def test_env_on_a_stack_that_is_down_raises(state_dir: Path) -> None:
    with pytest.raises(DevStackError, match="no dev stack"):
        devstack.env(state_dir)

    devstack.up(state_dir)
    devstack.down(state_dir)
    with pytest.raises(DevStackError, match="is down"):
        devstack.env(state_dir)


def test_cli_env_on_a_stack_that_is_down_exits_with_the_message(
    state_dir: Path,
) -> None:
    result = CliRunner().invoke(dev_app, ["env", "--state-dir", str(state_dir)])

    assert result.exit_code == 1
    assert "no dev stack" in result.output


def test_up_after_down_restarts_the_same_cluster_with_the_same_passwords(
    state_dir: Path,
) -> None:
    first = devstack.up(state_dir)
    admin = devstack.env(state_dir)["DWH_WAREHOUSE_ADMIN_URL"]
    with psycopg.connect(admin) as conn:
        conn.execute("CREATE TABLE survives_restart (id int)")
    devstack.down(state_dir)

    second = devstack.up(state_dir)

    assert second.started == ("postgres",)
    assert second.passwords == first.passwords
    admin = devstack.env(state_dir)["DWH_WAREHOUSE_ADMIN_URL"]
    assert _scalar(admin, "SELECT to_regclass('survives_restart')::text") == "survives_restart"


def test_down_never_signals_a_process_it_did_not_start(state_dir: Path) -> None:
    """A pid in stack.json that now runs something else (pid reuse) is left alone."""
    devstack.up(state_dir)
    stranger = subprocess.Popen(["sleep", "300"])
    try:
        record_path = state_dir / "stack.json"
        record = json.loads(record_path.read_text())
        record["services"]["moto"] = {
            "name": "moto",
            "pid": stranger.pid,
            "port": 1,
            "log": str(state_dir / "moto.log"),
        }
        record_path.write_text(json.dumps(record))

        assert devstack.down(state_dir) == ["postgres"]
        assert stranger.poll() is None
    finally:
        stranger.send_signal(signal.SIGKILL)
        stranger.wait()


def test_down_purge_deletes_the_state_dir(state_dir: Path) -> None:
    devstack.up(state_dir)

    assert devstack.down(state_dir, purge=True) == ["postgres"]
    assert not state_dir.exists()


def test_failed_postgres_start_reports_the_log_tail(state_dir: Path) -> None:
    devstack.up(state_dir)
    devstack.down(state_dir)
    with (state_dir / "pgdata" / "postgresql.conf").open("a") as conf:
        conf.write("no_such_setting = 1\n")

    with pytest.raises(DevStackError, match="starting PostgreSQL") as raised:
        devstack.up(state_dir)

    message = str(raised.value)
    assert str(state_dir / "postgres.log") in message
    assert "no_such_setting" in message
    assert devstack.down(state_dir) == []


def test_long_state_dir_puts_the_socket_in_a_short_dir(state_dir: Path) -> None:
    long_dir = state_dir / ("d" * 100)
    info = devstack.up(long_dir)
    admin = devstack.env(long_dir)["DWH_WAREHOUSE_ADMIN_URL"]
    socket_dir = Path(str(_scalar(admin, "SHOW unix_socket_directories")))

    assert len(str(socket_dir)) < len(str(long_dir))
    assert (socket_dir / f".s.PGSQL.{info.postgres.port}").is_socket()
    devstack.down(long_dir, purge=True)
    assert not socket_dir.exists()


@pytest.mark.timeout(240)
def test_up_with_prefect_serves_the_api_until_down(state_dir: Path) -> None:
    info = devstack.up(state_dir, prefect=True)
    assert info.prefect is not None
    api_url = devstack.env(state_dir)["PREFECT_API_URL"]

    health = f"{api_url}/health"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(health, timeout=5) as response:
        assert response.status == 200

    assert sorted(devstack.down(state_dir)) == ["postgres", "prefect"]
    assert not _alive(info.prefect.pid)
    assert not _port_open(info.prefect.port)
