"""Break and restore real services for the fault and security tests.

The session's shared `stack` must stay up for every other test, so servers are only
ever stopped on the `private_stack` (conftest): its PostgreSQL cluster is stopped and
restarted with pg_ctl, its moto server killed and started again on the same port, and
stack.json is updated so `devstack.down` still stops exactly what runs.

`TcpCut` sits between the engine and a server: `cut()` closes the port and drops every
open connection, which the client sees exactly as a stopped server (connection refused
or reset), while the server behind keeps its data. That is what a real S3 outage is
like; stopping moto instead would also erase every object it held, an artefact of the
test double rather than anything S3 does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
from psycopg import sql

import devstack
from tests.conftest import PIPELINES_DIR, Env, Stack

# --- the private stack's processes ----------------------------------------------------


def _rerecord(stack: Stack, service: devstack.Service) -> None:
    record = devstack.load_record(stack.state_dir)
    assert record is not None
    devstack.save_record(
        stack.state_dir, replace(record, services={**record.services, service.name: service})
    )


def _postgres(stack: Stack) -> devstack.Service:
    record = devstack.load_record(stack.state_dir)
    assert record is not None
    return record.services["postgres"]


def _pg_ctl(stack: Stack, *args: str) -> None:
    service = _postgres(stack)
    command = devstack.pg_ctl(stack.state_dir, *args)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stderr}\n{devstack.log_tail(service.log)}"


def _record_postmaster(stack: Stack) -> None:
    pid = int((devstack.pgdata_dir(stack.state_dir) / "postmaster.pid").read_text().split()[0])
    _rerecord(stack, replace(_postgres(stack), pid=pid))


def postgres_stop(stack: Stack) -> None:
    """Stop the private cluster: `-m fast` ends every session, open transactions roll back."""
    _pg_ctl(stack, "-m", "fast", "-w", "-t", "60", "stop")


def postgres_start(stack: Stack) -> None:
    _pg_ctl(stack, "-l", str(_postgres(stack).log), "-w", "-t", "60", "start")
    _record_postmaster(stack)


def postgres_restart(stack: Stack) -> None:
    _pg_ctl(stack, "-l", str(_postgres(stack).log), "-m", "fast", "-w", "-t", "60", "restart")
    _record_postmaster(stack)


def _moto(stack: Stack) -> devstack.Service:
    record = devstack.load_record(stack.state_dir)
    assert record is not None
    return record.services["moto"]


def moto_kill(stack: Stack) -> None:
    """SIGKILL the private moto server, as a crash would; everything it held is gone."""
    service = _moto(stack)
    os.killpg(service.pid, signal.SIGKILL)
    assert devstack.wait_gone(service.pid, 15)


def moto_start(stack: Stack) -> None:
    """Start moto again on the same port, with the dev bucket (empty: moto keeps no data)."""
    old = _moto(stack)
    command = [str(devstack.venv_script("moto_server")), "-H", devstack.HOST, "-p", str(old.port)]
    process = devstack.start_detached("moto", command, old.log)
    service = replace(old, pid=process.pid)
    _rerecord(stack, service)
    url = f"http://{devstack.HOST}:{old.port}/"
    devstack.wait_ready(process, service, lambda: devstack.http_status(url) is not None, 30)
    devstack.create_bucket(old.port)


# --- a cuttable TCP path ----------------------------------------------------------------


class TcpCut:
    """A TCP relay to `upstream` on a fixed local port that can be cut and restored."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = (devstack.HOST, upstream_port)
        self.port = devstack.free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.restore()

    @property
    def url(self) -> str:
        return f"http://{devstack.HOST}:{self.port}"

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((devstack.HOST, self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop the open ones, as a stopped server would."""
        with self._lock:
            listener, self._listener = self._listener, None
            dropped, self._open = self._open, set()
        if listener is not None:
            listener.close()
        for conn in dropped:
            # shutdown, not just close: it also wakes the relay thread blocked in recv()
            # on this socket, which would otherwise keep the connection half alive.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut while this one was connecting
                    client.close()
                    server.close()
                    return
                self._open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)  # pass the end of this direction on


# --- environments whose databases live on different clusters ----------------------------


@dataclass
class SplitEnv(Env):
    """An Env whose warehouse database may live on another cluster than its source."""

    warehouse_stack: Stack | None = None

    @property
    def warehouse_admin(self) -> str:
        return (self.warehouse_stack or self.stack).admin_conninfo(self.warehouse_db)


def _url_with_db(url: str, dbname: str, query: str = "") -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{dbname}" + (f"?{query}" if query else "")


@contextmanager
def split_env(
    monkeypatch: pytest.MonkeyPatch,
    storage_url: str,
    *,
    source: Stack,
    warehouse: Stack,
    url_query: str = "",
) -> Iterator[SplitEnv]:
    """Own source and warehouse databases on the given stacks, DWH_* pointing at them.

    `url_query` is appended to every database URL (e.g. `sslrootcert=...`).
    """
    tag = uuid.uuid4().hex[:10]
    made = SplitEnv(source, f"t_{tag}_src", f"t_{tag}_wh", storage_url, warehouse_stack=warehouse)
    plan = ((source, made.source_db, "source_app"), (warehouse, made.warehouse_db, "postgres"))
    for stack, name, owner in plan:
        with psycopg.connect(stack.admin_conninfo("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template_postgis OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(owner)
                )
            )
    variables = {
        "DWH_SOURCE_URL": _url_with_db(source.env["DWH_SOURCE_URL"], made.source_db, url_query),
        "DWH_SEED_URL": _url_with_db(source.env["DWH_SEED_URL"], made.source_db, url_query),
        "DWH_WAREHOUSE_URL": _url_with_db(warehouse.env["DWH_WAREHOUSE_URL"], made.warehouse_db, url_query),
        "DWH_WAREHOUSE_ADMIN_URL": _url_with_db(
            warehouse.env["DWH_WAREHOUSE_ADMIN_URL"], made.warehouse_db, url_query
        ),
        "DWH_WAREHOUSE_OWNER_PASSWORD": warehouse.env["DWH_WAREHOUSE_OWNER_PASSWORD"],
        "DWH_WAREHOUSE_RO_PASSWORD": warehouse.env["DWH_WAREHOUSE_RO_PASSWORD"],
        "DWH_STORAGE_URL": storage_url,
        "DWH_PIPELINES_DIR": os.environ.get("DWH_PIPELINES_DIR", str(PIPELINES_DIR)),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    try:
        yield made
    finally:
        for stack, name, _ in plan:
            with (
                contextlib.suppress(psycopg.OperationalError),
                psycopg.connect(stack.admin_conninfo("postgres"), autocommit=True) as conn,
            ):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def endpoint_port(url: str) -> int:
    port = urlparse(url).port
    assert port is not None
    return port


def small_parts_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_rows: int) -> None:
    """The fleet catalog with small parts, so an extract publishes several before it ends."""
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir(exist_ok=True)
    text = (PIPELINES_DIR / "fleet.yaml").read_text()
    assert "chunk_rows: 1000000" in text
    (pipelines / "fleet.yaml").write_text(text.replace("chunk_rows: 1000000", f"chunk_rows: {chunk_rows}"))
    monkeypatch.setenv("DWH_PIPELINES_DIR", str(pipelines))
