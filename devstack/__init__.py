"""A throwaway local stack without Docker: PostgreSQL/PostGIS, moto S3 and Prefect.

`up` starts whatever is missing and records every process it starts, with the generated
passwords, in `<state_dir>/stack.json`; `down` stops only what that record names, so it
never touches a process it did not start; `env` turns the record into the variables
`dwh.core.settings` reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import quote

import psycopg
import typer
from psycopg import sql
from pydantic import TypeAdapter, ValidationError

from dwh.core.settings import PROJECT_DIR

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from psycopg.rows import TupleRow

DEFAULT_STATE_DIR = PROJECT_DIR / ".dwh" / "dev"

PG_BIN = Path("/usr/lib/postgresql/15/bin")
POSTGIS_PACKAGE = "postgresql-15-postgis-3"
HOST = "127.0.0.1"
SUPERUSER = "postgres"
SOURCE_ROLE = "source_app"  # the OLTP application: owns and writes the source tables
READER_ROLE = "dwh_reader"  # what the flows extract as: SELECT only, as in production
SOURCE_DATABASE = "source"
WAREHOUSE_DATABASE = "warehouse"
TEMPLATE_DATABASE = "template_postgis"
S3_BUCKET = "dwh-dev"
S3_PREFIX = "dev"
S3_REGION = "us-east-1"
MOTO_KEY = "testing"

# initdb and postgres refuse to run as root, so then the cluster belongs to this user.
DB_OS_USER = "postgres"
# PostgreSQL refuses a socket path ("<dir>/.s.PGSQL.<port>") over 107 bytes (sun_path).
_MAX_SOCKET_DIR_CHARS = 107 - len("/.s.PGSQL.65535")
_MOTO_READY_SECONDS = 30.0
# `prefect server start` takes ~20 s to answer (imports, then SQLite migrations).
_PREFECT_READY_SECONDS = 90.0
_STOP_GRACE_SECONDS = 15.0
_LOG_TAIL_LINES = 20

ServiceName = Literal["postgres", "moto", "prefect"]

# Probes go straight to 127.0.0.1: a proxy from the environment must never see them.
_LOCAL_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class DevStackError(RuntimeError):
    """The stack failed to start, answer or stop; the message says where to look."""


@dataclass(frozen=True)
class Service:
    """One process `up` started: enough to reach it, to recognise it and to stop it."""

    name: ServiceName
    pid: int
    port: int
    log: Path


@dataclass(frozen=True)
class Passwords:
    """Made at the first `up` and kept across restarts, so exported URLs stay valid."""

    superuser: str = field(repr=False)
    source_app: str = field(repr=False)
    warehouse_owner: str = field(repr=False)
    warehouse_ro: str = field(repr=False)
    # Added later: a record written before it gets one at the next `up`.
    source_reader: str = field(repr=False, default_factory=lambda: secrets.token_urlsafe(24))


@dataclass(frozen=True)
class StackInfo:
    """What runs after `up`, and which of it this very call started."""

    state_dir: Path
    postgres: Service
    s3: Service | None
    prefect: Service | None
    started: tuple[ServiceName, ...]
    passwords: Passwords = field(repr=False)


@dataclass(frozen=True)
class _Record:
    """`stack.json`: the secrets, and every service `up` started (`down` may stop)."""

    passwords: Passwords
    services: dict[ServiceName, Service] = field(default_factory=dict)


_RECORD = TypeAdapter(_Record)


# --- library API ----------------------------------------------------------------------


def up(state_dir: Path = DEFAULT_STATE_DIR, *, s3: bool = False, prefect: bool = False) -> StackInfo:
    """Start the stack: reuse what runs, start only the missing services asked for."""
    state_dir = state_dir.resolve()
    ensure_postgis()
    _prepare_state_dir(state_dir)
    record = _load_record(state_dir) or _Record(passwords=_new_passwords())
    record = replace(record, services=_live_services(record, state_dir))
    _save_record(state_dir, record)
    wanted: list[ServiceName] = ["postgres"]
    wanted += ["moto"] if s3 else []
    wanted += ["prefect"] if prefect else []
    started: list[ServiceName] = []
    for name in wanted:
        if name in record.services:
            continue
        service = _start(name, state_dir, record.passwords)
        # Recorded at once, so `down` can stop it even if a later service fails.
        record = replace(record, services={**record.services, name: service})
        _save_record(state_dir, record)
        started.append(name)
    postgres = record.services["postgres"]
    _require_ready(postgres)
    _bootstrap_databases(postgres.port, record.passwords)
    return _stack_info(state_dir, record, started)


def down(state_dir: Path = DEFAULT_STATE_DIR, *, purge: bool = False) -> list[str]:
    """Stop what `up` started, newest first; return the names of those stopped."""
    state_dir = state_dir.resolve()
    record = _load_record(state_dir)
    stopped: list[str] = []
    if record is not None:
        services = reversed(record.services.values())
        stopped = [service.name for service in services if _stop(service, state_dir)]
        _save_record(state_dir, replace(record, services={}))
    if purge:
        _purge(state_dir)
    return stopped


def env(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, str]:
    """The variables `dwh.core.settings` reads, pointing at the running stack."""
    state_dir = state_dir.resolve()
    record = _load_record(state_dir)
    if record is None:
        raise DevStackError(f"no dev stack in {state_dir}: run `dwh dev up` first")
    running = _live_services(record, state_dir)
    postgres = running.get("postgres")
    if postgres is None or not _postgres_ready(postgres.port):
        raise DevStackError(
            f"the dev stack in {state_dir} is down (PostgreSQL is not running): run `dwh dev up`"
        )
    variables = _postgres_env(postgres.port, record.passwords)
    variables |= _storage_env(state_dir, running.get("moto"))
    prefect = running.get("prefect")
    if prefect is not None:
        variables["PREFECT_API_URL"] = f"http://{HOST}:{prefect.port}/api"
    return variables


def ensure_postgis() -> None:
    """Install PostGIS for PostgreSQL 15 with apt when its extension is missing."""
    control = _pg_sharedir() / "extension" / "postgis.control"
    if control.exists():
        return
    if os.geteuid() != 0:
        raise DevStackError(
            f"PostGIS is not installed ({control} is missing) and installing it "
            f"needs root: run `sudo apt-get install -y {POSTGIS_PACKAGE}`"
        )
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update"], "apt-get update", env=apt_env)
    _run(
        ["apt-get", "install", "-y", POSTGIS_PACKAGE],
        f"installing {POSTGIS_PACKAGE}",
        env=apt_env,
    )
    if not control.exists():
        raise DevStackError(f"{POSTGIS_PACKAGE} was installed but {control} is still missing")


# --- state directory and record -------------------------------------------------------


def _stack_file(state_dir: Path) -> Path:
    return state_dir / "stack.json"


def _pgdata(state_dir: Path) -> Path:
    return state_dir / "pgdata"


def _socket_dir(state_dir: Path) -> Path:
    """The state dir, or a short temp dir when a socket under it would be too long."""
    if len(str(state_dir)) <= _MAX_SOCKET_DIR_CHARS:
        return state_dir
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"dwh-pg-{digest}"


def _prepare_state_dir(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "storage").mkdir(exist_ok=True)
    _give_to_db_user(state_dir)
    if os.geteuid() != 0:
        return
    probe = ["runuser", "-u", DB_OS_USER, "--", "test", "-w", str(state_dir)]
    if subprocess.run(probe, check=False).returncode != 0:
        raise DevStackError(
            f"the {DB_OS_USER} OS user cannot write to {state_dir}: each parent "
            "directory must be traversable (chmod o+x), or pick another --state-dir"
        )


def _load_record(state_dir: Path) -> _Record | None:
    path = _stack_file(state_dir)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return _RECORD.validate_json(text)
    except ValidationError as err:
        raise DevStackError(f"{path} is not a valid dev stack record: {err}") from err


def _save_record(state_dir: Path, record: _Record) -> None:
    """Write `stack.json` atomically, readable by its owner only: it holds passwords."""
    path = _stack_file(state_dir)
    partial = path.with_name(f".{path.name}.partial")
    _write_private(partial, _RECORD.dump_json(record, indent=2))
    partial.replace(path)


def _write_private(path: Path, data: bytes) -> None:
    """Write a file that is mode 0600 from its creation on, never briefly readable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _new_passwords() -> Passwords:
    return Passwords(
        superuser=secrets.token_urlsafe(24),
        source_app=secrets.token_urlsafe(24),
        warehouse_owner=secrets.token_urlsafe(24),
        warehouse_ro=secrets.token_urlsafe(24),
    )


def _live_services(record: _Record, state_dir: Path) -> dict[ServiceName, Service]:
    return {name: s for name, s in record.services.items() if _is_ours(s, state_dir)}


def _stack_info(state_dir: Path, record: _Record, started: list[ServiceName]) -> StackInfo:
    return StackInfo(
        state_dir=state_dir,
        postgres=record.services["postgres"],
        s3=record.services.get("moto"),
        prefect=record.services.get("prefect"),
        started=tuple(started),
        passwords=record.passwords,
    )


def _purge(state_dir: Path) -> None:
    """Delete the state dir, refusing one that does not look like a dev stack's."""
    if state_dir.exists():
        if not _stack_file(state_dir).exists() and any(state_dir.iterdir()):
            raise DevStackError(
                f"refusing to delete {state_dir}: it holds no stack.json, so it may not be a dev stack"
            )
        shutil.rmtree(state_dir)
    socket_dir = _socket_dir(state_dir)
    if socket_dir != state_dir:
        shutil.rmtree(socket_dir, ignore_errors=True)


# --- processes ------------------------------------------------------------------------


def _process_command(pid: int) -> str | None:
    """A live process's NUL-separated command line; None when gone (or a zombie)."""
    if pid <= 0:
        return None
    # Reap it if it is our own exited child (tests run up and down in one process).
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    proc = Path("/proc") / str(pid)
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command = (proc / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    if state == "Z":
        return None
    return "\0" + command.decode(errors="replace")


def _command_marker(service: Service, state_dir: Path) -> str:
    """Arguments the process's command line must hold for us to treat the pid as ours.

    NUL-joined like /proc/<pid>/cmdline, so `-D /x/pgdata` cannot match `/x/pgdata2`.
    """
    if service.name == "postgres":
        args = ["", "-D", str(_pgdata(state_dir))]
    elif service.name == "moto":
        args = ["moto_server", "-H", HOST, "-p", str(service.port)]
    else:
        args = [
            "prefect",
            "server",
            "start",
            "--host",
            HOST,
            "--port",
            str(service.port),
        ]
    return "\0".join([*args, ""])


def _is_ours(service: Service, state_dir: Path) -> bool:
    """True when the recorded pid still runs the recorded command: pids get reused."""
    command = _process_command(service.pid)
    return command is not None and _command_marker(service, state_dir) in command


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _process_command(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _signal_group(pid: int, signum: signal.Signals) -> None:
    """Signal the session `up` created for the service, so its children go too."""
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(lines[-_LOG_TAIL_LINES:])


def _run(
    command: list[str],
    what: str,
    *,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run a command; on failure raise with its stderr and the last lines of `log`."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    except FileNotFoundError as err:
        raise DevStackError(f"{what} failed: {command[0]} not found") from err
    if result.returncode == 0:
        return result.stdout
    message = f"{what} failed (exit {result.returncode}): {shlex.join(command)}"
    output = (result.stderr or result.stdout).strip()
    if output:
        message += f"\n{output}"
    if log is not None:
        message += f"\nlast lines of {log}:\n{_tail(log)}"
    raise DevStackError(message)


def _as_db_user(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", DB_OS_USER, "--", *command]
    return command


def _give_to_db_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, DB_OS_USER, DB_OS_USER)


def _start(name: ServiceName, state_dir: Path, passwords: Passwords) -> Service:
    if name == "postgres":
        return _start_postgres(state_dir, passwords.superuser)
    if name == "moto":
        return _start_moto(state_dir)
    return _start_prefect(state_dir)


def _stop(service: Service, state_dir: Path) -> bool:
    """Stop one recorded service if it still runs; False when nothing was to stop."""
    if not _is_ours(service, state_dir):
        return False
    if service.name == "postgres":
        _stop_postgres(service, state_dir)
    elif service.name == "moto":
        _stop_detached(service, (signal.SIGTERM,))
    else:
        # SIGINT is uvicorn's clean shutdown; SIGTERM is the fallback when it hangs.
        _stop_detached(service, (signal.SIGINT, signal.SIGTERM))
    return True


def _start_detached(
    service: ServiceName,
    command: list[str],
    log: Path,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a service in its own session: it outlives us and stops as a group."""
    with log.open("ab") as out:
        try:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        except FileNotFoundError as err:
            raise DevStackError(f"cannot start {service}: {command[0]} not found") from err


def _wait_ready(
    process: subprocess.Popen[bytes],
    service: Service,
    ready: Callable[[], bool],
    timeout: float,
) -> None:
    """Wait for `ready()`; on failure kill the process, so `up` leaves no orphan."""
    deadline = time.monotonic() + timeout
    while not ready():
        problem = None
        if process.poll() is not None:
            problem = f"exited with code {process.returncode}"
        elif time.monotonic() > deadline:
            problem = f"did not answer within {timeout:.0f} s"
        if problem is not None:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
            raise DevStackError(
                f"{service.name} on port {service.port} {problem}; "
                f"last lines of {service.log}:\n{_tail(service.log)}"
            )
        time.sleep(0.2)


def _stop_detached(service: Service, signals: tuple[signal.Signals, ...]) -> None:
    for signum in (*signals, signal.SIGKILL):
        _signal_group(service.pid, signum)
        if _wait_gone(service.pid, _STOP_GRACE_SECONDS):
            return
    raise DevStackError(f"{service.name} (pid {service.pid}) survived SIGKILL")


def _http_status(url: str) -> int | None:
    """The status `url` answers with, or None while nothing listens there yet."""
    try:
        with _LOCAL_HTTP.open(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


# --- PostgreSQL -----------------------------------------------------------------------


def _pg_sharedir() -> Path:
    pg_config = PG_BIN / "pg_config"
    if not pg_config.exists():
        raise DevStackError(f"PostgreSQL 15 is not installed: {pg_config} is missing")
    return Path(_run([str(pg_config), "--sharedir"], "pg_config --sharedir").strip())


def _server_config(port: int, socket_dir: Path) -> str:
    """postgresql.conf additions: a throwaway cluster trades durability for speed."""
    settings = {
        "listen_addresses": HOST,
        "port": str(port),
        "unix_socket_directories": str(socket_dir),
        # The socket is for pg_ctl (the cluster's OS user); everyone else uses TCP with a password.
        "unix_socket_permissions": "0700",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "shared_buffers": "256MB",
        "max_connections": "200",
        "wal_level": "minimal",
        "max_wal_senders": "0",
        "logging_collector": "off",
    }
    quoted = {name: "'" + value.replace("'", "''") + "'" for name, value in settings.items()}
    return "".join(f"{name} = {value}\n" for name, value in quoted.items())


# Over the socket only the cluster's own OS user, as the superuser (peer, not trust: the
# socket would otherwise make any local account a superuser without a password).
_PG_HBA = f"""\
# TYPE  DATABASE  USER        ADDRESS       METHOD
local   all       {SUPERUSER}                  peer
host    all       all         {HOST}/32  scram-sha-256
"""


def _write_db_file(path: Path, text: str) -> None:
    _write_private(path, text.encode())
    _give_to_db_user(path)


def _init_cluster(state_dir: Path, superuser_password: str) -> None:
    pgdata = _pgdata(state_dir)
    if (pgdata / "PG_VERSION").exists():
        return
    pwfile = state_dir / ".superuser-password"
    _write_db_file(pwfile, superuser_password + "\n")
    initdb = [
        str(PG_BIN / "initdb"),
        f"--pgdata={pgdata}",
        f"--username={SUPERUSER}",
        f"--pwfile={pwfile}",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--no-locale",
        "--no-sync",
    ]
    try:
        _run(_as_db_user(initdb), f"initdb in {pgdata}")
    finally:
        pwfile.unlink(missing_ok=True)
    _write_db_file(pgdata / "pg_hba.conf", _PG_HBA)
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write("\ninclude 'dwh_dev.conf'\n")


def _start_postgres(state_dir: Path, superuser_password: str) -> Service:
    _init_cluster(state_dir, superuser_password)
    pgdata = _pgdata(state_dir)
    log = state_dir / "postgres.log"
    port = _free_port()
    socket_dir = _socket_dir(state_dir)
    socket_dir.mkdir(mode=0o700, exist_ok=True)
    _give_to_db_user(socket_dir)
    _write_db_file(pgdata / "dwh_dev.conf", _server_config(port, socket_dir))
    start = _pg_ctl(state_dir, "-l", str(log), "-w", "-t", "60", "start")
    _run(start, f"starting PostgreSQL on port {port}", log=log)
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    return Service(name="postgres", pid=pid, port=port, log=log)


def _pg_ctl(state_dir: Path, *args: str) -> list[str]:
    return _as_db_user([str(PG_BIN / "pg_ctl"), "-D", str(_pgdata(state_dir)), *args])


def _stop_postgres(service: Service, state_dir: Path) -> None:
    stop = _pg_ctl(state_dir, "-m", "fast", "-w", "stop")
    _run(stop, "stopping PostgreSQL", log=service.log)
    if not _wait_gone(service.pid, _STOP_GRACE_SECONDS):
        raise DevStackError(f"PostgreSQL (pid {service.pid}) still runs after pg_ctl stop")


def _postgres_ready(port: int) -> bool:
    command = [str(PG_BIN / "pg_isready"), "-q", "-h", HOST, "-p", str(port)]
    return subprocess.run(command, check=False).returncode == 0


def _require_ready(postgres: Service) -> None:
    """A server that runs but refuses connections needs a look, not a second server."""
    if not _postgres_ready(postgres.port):
        raise DevStackError(
            f"PostgreSQL (pid {postgres.pid}) runs but refuses connections on port "
            f"{postgres.port}; last lines of {postgres.log}:\n{_tail(postgres.log)}"
        )


def _connect(port: int, passwords: Passwords, dbname: str) -> psycopg.Connection[TupleRow]:
    return psycopg.connect(
        host=HOST,
        port=port,
        user=SUPERUSER,
        password=passwords.superuser,
        dbname=dbname,
        autocommit=True,
        application_name="dwh-devstack",
    )


def _bootstrap_databases(port: int, passwords: Passwords) -> None:
    """Create the missing roles and databases; every step is safe to repeat."""
    try:
        with _connect(port, passwords, "postgres") as conn:
            _ensure_source_role(conn, SOURCE_ROLE, passwords.source_app)
            _ensure_source_role(conn, READER_ROLE, passwords.source_reader)
            _ensure_database(conn, TEMPLATE_DATABASE, SUPERUSER, template="template0")
        with _connect(port, passwords, TEMPLATE_DATABASE) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            _grant_reads(conn)  # every database made from the template inherits it
        with _connect(port, passwords, "postgres") as conn:
            name = sql.Identifier(TEMPLATE_DATABASE)
            conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(name))
            _ensure_database(conn, SOURCE_DATABASE, SOURCE_ROLE, template=TEMPLATE_DATABASE)
            _ensure_database(conn, WAREHOUSE_DATABASE, SUPERUSER, template=TEMPLATE_DATABASE)
        for dbname in (SOURCE_DATABASE, WAREHOUSE_DATABASE):
            with _connect(port, passwords, dbname) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        with _connect(port, passwords, SOURCE_DATABASE) as conn:
            _grant_reads(conn)  # a source database made before the template had it
    except psycopg.Error as err:
        raise DevStackError(f"setting up databases on {HOST}:{port} failed: {err}") from err


def _ensure_source_role(conn: psycopg.Connection[TupleRow], name: str, password: str) -> None:
    role = sql.Identifier(name)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone()
    verb = sql.SQL("ALTER") if exists else sql.SQL("CREATE")
    conn.execute(sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(verb, role, sql.Literal(password)))
    conn.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(role))


def _grant_reads(conn: psycopg.Connection[TupleRow]) -> None:
    """The reader may SELECT every table in `public`, those created later by the app or admin too."""
    reader = sql.Identifier(READER_ROLE)
    conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(reader))
    later = sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT ON TABLES TO {}")
    for creator in (SOURCE_ROLE, SUPERUSER):
        conn.execute(later.format(sql.Identifier(creator), reader))


def _ensure_database(conn: psycopg.Connection[TupleRow], name: str, owner: str, *, template: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    if exists:
        return
    conn.execute(
        sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(owner), sql.Identifier(template)
        )
    )


def _postgres_env(port: int, passwords: Passwords) -> dict[str, str]:
    address = f"{HOST}:{port}"
    app_pw = quote(passwords.source_app, safe="")
    reader_pw = quote(passwords.source_reader, safe="")
    superuser_pw = quote(passwords.superuser, safe="")
    app = f"{SOURCE_ROLE}:{app_pw}@{address}/{SOURCE_DATABASE}"
    reader = f"{READER_ROLE}:{reader_pw}@{address}/{SOURCE_DATABASE}"
    admin = f"{SUPERUSER}:{superuser_pw}@{address}/{WAREHOUSE_DATABASE}"
    return {
        # The flows read as a role that cannot write the source (the guard refuses one
        # that can); sample rows are written as the application itself.
        "DWH_SOURCE_URL": f"postgresql://{reader}",
        "DWH_SEED_URL": f"postgresql://{app}",
        # No user: flows connect as <pipeline>_owner with DWH_WAREHOUSE_OWNER_PASSWORD.
        "DWH_WAREHOUSE_URL": f"postgresql://{address}/{WAREHOUSE_DATABASE}",
        "DWH_WAREHOUSE_ADMIN_URL": f"postgresql://{admin}",
        "DWH_WAREHOUSE_OWNER_PASSWORD": passwords.warehouse_owner,
        "DWH_WAREHOUSE_RO_PASSWORD": passwords.warehouse_ro,
    }


# --- moto (S3) and Prefect server -----------------------------------------------------


def _venv_script(name: str) -> Path:
    """A console script next to the running interpreter, i.e. in the project's venv."""
    return Path(sys.executable).parent / name


def _start_moto(state_dir: Path) -> Service:
    port = _free_port()
    log = state_dir / "moto.log"
    command = [str(_venv_script("moto_server")), "-H", HOST, "-p", str(port)]
    process = _start_detached("moto", command, log)
    service = Service(name="moto", pid=process.pid, port=port, log=log)
    _wait_ready(
        process,
        service,
        lambda: _http_status(f"http://{HOST}:{port}/") is not None,
        _MOTO_READY_SECONDS,
    )
    try:
        _create_bucket(port)
    except Exception as err:
        _stop_detached(service, (signal.SIGTERM,))
        msg = f"creating bucket {S3_BUCKET} in moto on port {port} failed: {err}"
        raise DevStackError(msg) from err
    return service


def _create_bucket(port: int) -> None:
    import boto3  # noqa: PLC0415  (~0.4 s: only when moto starts, not for every `dwh` command)

    client = boto3.client(
        "s3",
        endpoint_url=f"http://{HOST}:{port}",
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=MOTO_KEY,
        region_name=S3_REGION,
    )
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=S3_BUCKET)
    # As a production bucket should be: an overwrite in processed/ keeps the first version.
    client.put_bucket_versioning(Bucket=S3_BUCKET, VersioningConfiguration={"Status": "Enabled"})


def _start_prefect(state_dir: Path) -> Service:
    port = _free_port()
    log = state_dir / "prefect.log"
    home = state_dir / "prefect"
    home.mkdir(exist_ok=True)
    # An outer PREFECT_API_URL or database URL would tie this server to a real one.
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    server_env |= {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    command = [
        str(_venv_script("prefect")),
        "server",
        "start",
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    process = _start_detached("prefect", command, log, env=server_env)
    service = Service(name="prefect", pid=process.pid, port=port, log=log)
    health = f"http://{HOST}:{port}/api/health"
    _wait_ready(process, service, lambda: _http_status(health) == HTTPStatus.OK, _PREFECT_READY_SECONDS)
    return service


def _storage_env(state_dir: Path, moto: Service | None) -> dict[str, str]:
    if moto is None:
        return {"DWH_STORAGE_URL": f"file://{state_dir / 'storage'}"}
    return {
        "DWH_STORAGE_URL": f"s3://{S3_BUCKET}/{S3_PREFIX}",
        "AWS_ENDPOINT_URL": f"http://{HOST}:{moto.port}",
        "AWS_ACCESS_KEY_ID": MOTO_KEY,
        "AWS_SECRET_ACCESS_KEY": MOTO_KEY,
        "AWS_DEFAULT_REGION": S3_REGION,
    }


# --- CLI ------------------------------------------------------------------------------

dev_app = typer.Typer(
    name="dev",
    help="A throwaway local stack without Docker: PostgreSQL/PostGIS, S3, Prefect.",
    no_args_is_help=True,
)

StateDirOption = Annotated[
    Path,
    typer.Option("--state-dir", help="Where the stack keeps data, logs and stack.json."),
]


@contextmanager
def _reported_errors() -> Iterator[None]:
    """Show a DevStackError as a message and exit 1, rather than as a traceback."""
    try:
        yield
    except DevStackError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err


@dev_app.command("up")
def up_command(
    s3: Annotated[bool, typer.Option("--s3/--no-s3", help="Also run moto as local S3.")] = False,
    prefect: Annotated[
        bool, typer.Option("--prefect/--no-prefect", help="Also run a Prefect server.")
    ] = False,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Start the stack, reusing whatever already runs."""
    with _reported_errors():
        info = up(state_dir, s3=s3, prefect=prefect)
    typer.echo(f"started: {', '.join(info.started) or 'nothing, all was running'}")
    command = shlex.join(["dwh", "dev", "env", "--state-dir", str(info.state_dir)])
    typer.echo(f'load its variables with: eval "$({command})"')


@dev_app.command("down")
def down_command(
    purge: Annotated[
        bool,
        typer.Option("--purge", help="Also delete the state dir: data, logs, secrets."),
    ] = False,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Stop what `up` started, and nothing else."""
    with _reported_errors():
        stopped = down(state_dir, purge=purge)
    typer.echo(f"stopped: {', '.join(stopped) or 'nothing, none was running'}")


@dev_app.command("env")
def env_command(state_dir: StateDirOption = DEFAULT_STATE_DIR) -> None:
    """Print `export NAME='value'` lines for the running stack (use with eval)."""
    with _reported_errors():
        variables = env(state_dir)
    for name, value in variables.items():
        typer.echo(f"export {name}={shlex.quote(value)}")
