"""Where the dev stack keeps its state: names, ports, passwords and `stack.json`."""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import TypeAdapter, ValidationError

from dwh.core.settings import PROJECT_DIR

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


# The Prefect server's own database. Not SQLite: with two workers polling, SQLite's
# single writer deadlocks the server's queue bookkeeping for its 60 s busy timeout and
# API calls fail with 503 ("database is locked"); production servers use PostgreSQL.
PREFECT_DATABASE = "prefect"


S3_BUCKET = "dwh-dev"


S3_PREFIX = "dev"


S3_REGION = "us-east-1"


MOTO_KEY = "testing"


# initdb and postgres refuse to run as root, so then the cluster belongs to this user.
DB_OS_USER = "postgres"


# PostgreSQL refuses a socket path ("<dir>/.s.PGSQL.<port>") over 107 bytes (sun_path).
MAX_SOCKET_DIR_CHARS = 107 - len("/.s.PGSQL.65535")


MOTO_READY_SECONDS = 30.0


# `prefect server start` takes ~20 s to answer (imports, then its database migrations).
PREFECT_READY_SECONDS = 90.0


STOP_GRACE_SECONDS = 15.0


LOG_TAIL_LINES = 20


ServiceName = Literal["postgres", "moto", "prefect"]


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
class StackRecord:
    """`stack.json`: the secrets, and every service `up` started (`down` may stop)."""

    passwords: Passwords
    services: dict[ServiceName, Service] = field(default_factory=dict)


RECORD_JSON = TypeAdapter(StackRecord)


def stack_file(state_dir: Path) -> Path:
    return state_dir / "stack.json"


def pgdata_dir(state_dir: Path) -> Path:
    return state_dir / "pgdata"


def socket_dir_for(state_dir: Path) -> Path:
    """The state dir, or a short temp dir when a socket under it would be too long."""
    if len(str(state_dir)) <= MAX_SOCKET_DIR_CHARS:
        return state_dir
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"dwh-pg-{digest}"


def load_record(state_dir: Path) -> StackRecord | None:
    path = stack_file(state_dir)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return RECORD_JSON.validate_json(text)
    except ValidationError as err:
        raise DevStackError(f"{path} is not a valid dev stack record: {err}") from err


def save_record(state_dir: Path, record: StackRecord) -> None:
    """Write `stack.json` atomically, readable by its owner only: it holds passwords."""
    path = stack_file(state_dir)
    partial = path.with_name(f".{path.name}.partial")
    write_private(partial, RECORD_JSON.dump_json(record, indent=2))
    partial.replace(path)


def write_private(path: Path, data: bytes) -> None:
    """Write a file that is mode 0600 from its creation on, never briefly readable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def new_passwords() -> Passwords:
    return Passwords(
        superuser=secrets.token_urlsafe(24),
        source_app=secrets.token_urlsafe(24),
        warehouse_owner=secrets.token_urlsafe(24),
        warehouse_ro=secrets.token_urlsafe(24),
    )
