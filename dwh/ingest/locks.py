"""Advisory locks on the warehouse: one run per table chain, one run per flow.

Keys come from `dwh.core.names.lock_key`, in separate namespaces for tables and flows.

A lock is a session lock on its own connection, so it ends with that session: when the
warehouse restarts or fails over mid-run, the server has already released it. The run's
own work is still safe (each load is one transaction and the run log decides what
loads), so releasing a lock whose connection is gone is a warning, never a failure of
the work that finished after the retry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import psycopg

from dwh.core.names import lock_key
from dwh.core.sqlfiles import read_sql
from dwh.ingest.engine import Engine

log = logging.getLogger(__name__)


def _release(
    conn: psycopg.Connection[Any], statement: str, params: Sequence[Any] | Mapping[str, Any], what: str
) -> None:
    """Unlock, unless the session is gone, which released the lock with it."""
    if conn.closed:
        return
    try:
        conn.execute(statement, params)
    except psycopg.OperationalError as exc:
        log.warning("%s: its lock ended with its connection (warehouse restarted?): %s", what, exc)


@contextmanager
def table_lock(engine: Engine, table: str, conn: psycopg.Connection[Any] | None = None) -> Iterator[bool]:
    """Yield True while this process holds the table's lock, False if another does.

    The lock lives on `conn` (an autocommit session the caller keeps open for the whole
    block and may use meanwhile) or, without one, on a connection of its own.
    """
    key = {"key": lock_key(engine.catalog.pipeline, "table", table)}
    folder = engine.sql_dir / "engine"
    with (
        nullcontext(conn)
        if conn is not None
        else psycopg.connect(engine.warehouse_conninfo, autocommit=True) as held
    ):
        row = held.execute(read_sql(folder / "try_table_lock.sql"), key).fetchone()
        acquired = bool(row and row[0])
        try:
            yield acquired
        finally:
            if acquired:
                _release(held, read_sql(folder / "table_unlock.sql"), key, f"table {table}")


_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtext(%s))"
_WAIT_LOCK = "SELECT pg_advisory_lock(hashtext(%s)) IS NULL"
_UNLOCK = "SELECT pg_advisory_unlock(hashtext(%s))"


@contextmanager
def exclusive_run(conninfo: str, name: str, *, wait: bool = False) -> Iterator[bool]:
    """Yield True while this process is the only `name` run on the warehouse, False if another is.

    A session-level advisory lock on its own autocommit connection: it holds for the
    whole run (whatever transactions the run opens elsewhere) and dies with the
    process, so a crashed run never blocks the next one. With `wait`, a run another
    one holds is waited for instead of skipped (the nightly rebuild must not be lost
    to the 15-minute run that started at the same minute).
    """
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if wait:
            conn.execute(_WAIT_LOCK, (name,))
            row: tuple[Any, ...] | None = (True,)
        else:
            row = conn.execute(_TRY_LOCK, (name,)).fetchone()
        acquired = bool(row and row[0])
        try:
            yield acquired
        finally:
            if acquired:
                _release(conn, _UNLOCK, (name,), f"run {name}")
