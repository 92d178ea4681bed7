"""Sessions one run's table chains hand on to each other instead of connecting anew.

Each chain opened its own sessions: the warehouse session that holds its lock, the
read-only source session its window probe (and then its extract) reads on, and the
extract's warehouse session. Each connect is a fork on the server and a SCRAM exchange
(~6 ms, ~3 ms of it client CPU here): two-fifths of a table with nothing new, and a
300-table estate showed its OLTP 300 logins per run. Within `reused_sessions()` (a
parent run) a chain returns its sessions when it ends cleanly and the next chain on
any thread takes them.

A session goes back only when it is in a known state: open, autocommit, no
transaction, and nothing waiting on its socket. A backend the server ended (a
restart, `idle_session_timeout`, `pg_terminate_backend`) writes its FATAL message
before it goes, so an idle session whose socket is readable is closed, not handed on.
A chain that raised closes what it held. Outside `reused_sessions()` every session is
opened and closed as before."""

from __future__ import annotations

import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

Key = tuple[str, str | None]  # conninfo, setup statement


class SessionPool:
    """Idle autocommit sessions by (conninfo, setup); thread-safe, unbounded.

    At most one session per chain running at once is ever idle, so the pool holds no
    more sessions than the run had threads.
    """

    def __init__(self) -> None:
        self._idle: dict[Key, list[psycopg.Connection[Any]]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def take(self, key: Key) -> psycopg.Connection[Any] | None:
        """An idle session for `key` still fit to use, or None."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                conn = idle.pop()
            if _fit(conn):
                return conn
            conn.close()

    def give(self, key: Key, conn: psycopg.Connection[Any]) -> None:
        """Keep `conn` for the next chain if it is fit and the run has not ended."""
        if _fit(conn):
            with self._lock:
                if not self._closed:
                    self._idle.setdefault(key, []).append(conn)
                    return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def _fit(conn: psycopg.Connection[Any]) -> bool:
    """Open, autocommit, outside a transaction, and the server has said nothing since."""
    if conn.closed or conn.broken or not conn.autocommit:
        return False
    if conn.info.transaction_status != TransactionStatus.IDLE:
        return False
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    return not readable


_POOL: ContextVar[SessionPool | None] = ContextVar("dwh_session_pool", default=None)


@contextmanager
def reused_sessions() -> Iterator[None]:
    """Within the block (and threads that copy its context) `session` reuses sessions."""
    pool = SessionPool()
    token = _POOL.set(pool)
    try:
        yield
    finally:
        _POOL.reset(token)
        pool.close()


@contextmanager
def session(conninfo: str, setup: str | None = None) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit session on `conninfo` that has run `setup` once; reused in a pool.

    `setup` is a statement that sets the session up (`SET ...`); sessions set up
    differently are never mixed. Returned to the pool only if the block did not raise.
    """
    pool = _POOL.get()
    key = (conninfo, setup)
    conn = pool.take(key) if pool is not None else None
    if conn is None:
        conn = psycopg.connect(conninfo, autocommit=True)
        try:
            if setup is not None:
                conn.execute(setup)
        except BaseException:
            conn.close()
            raise
    if pool is None:
        with conn:
            yield conn
        return
    try:
        yield conn
    except BaseException:
        conn.close()
        raise
    pool.give(key, conn)
