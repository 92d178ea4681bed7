"""A run's chains hand their sessions on, but only sessions in a known state (dwh/ingest/sessions.py)."""

from __future__ import annotations

from contextlib import ExitStack

import psycopg
import pytest

from dwh.ingest.sessions import reused_sessions, session
from tests.conftest import Env

READ_ONLY = "SET default_transaction_read_only = on"


def _pid(conn: psycopg.Connection[object]) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]


def test_sessions_are_handed_on_within_a_run_and_opened_anew_outside_one(env: Env) -> None:
    conninfo = env.warehouse_admin
    with session(conninfo) as conn:
        alone = _pid(conn)
    assert conn.closed, "outside a run a session is closed after use"
    with session(conninfo) as conn:
        assert _pid(conn) != alone

    with reused_sessions():
        with session(conninfo) as first:
            pid = _pid(first)
        with session(conninfo) as second:
            assert _pid(second) == pid, "the next chain takes the idle session"
            with session(conninfo) as third:  # both in use: a second session
                third_pid = _pid(third)
                assert third_pid != pid
        # Set up differently: never mixed with the plain ones.
        with session(conninfo, READ_ONLY) as read_only:
            assert _pid(read_only) != pid
            row = read_only.execute("SHOW default_transaction_read_only").fetchone()
            assert row == ("on",)
        with session(conninfo) as plain:
            assert _pid(plain) in {pid, third_pid}, "a plain session, not the read-only one"
            assert plain.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
    # The run's end closes its idle sessions.
    assert [first.closed, third.closed, read_only.closed] == [True, True, True]

    # A chain that outlives its run (cancelled, abandoned) closes its session at its end.
    outliving = ExitStack()
    with reused_sessions():
        late = outliving.enter_context(session(conninfo))
    assert not late.closed
    outliving.close()
    assert late.closed


def test_a_session_in_an_unknown_state_is_closed_not_handed_on(env: Env) -> None:
    conninfo = env.warehouse_admin
    with reused_sessions():
        # Left inside a transaction.
        with session(conninfo) as conn:
            left_open = _pid(conn)
            conn.execute("BEGIN")
        assert conn.closed
        with session(conninfo) as conn:
            assert _pid(conn) != left_open

        # The block raised: whatever it was doing, the session goes.
        def failing_chain() -> int:
            with session(conninfo) as conn:
                held.append(conn)
                pid = _pid(conn)
                raise RuntimeError(f"chain failed on session {pid}")

        held: list[psycopg.Connection[object]] = []
        with pytest.raises(RuntimeError, match="chain failed") as failed:
            failing_chain()
        assert held[0].closed
        raised = int(str(failed.value).rsplit(" ", 1)[1])

        # Ended by the server while idle (a restart, pg_terminate_backend): the next
        # chain gets a live session, not the dead one's error.
        with session(conninfo) as conn:
            terminated = _pid(conn)
        with psycopg.connect(env.warehouse_admin, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (terminated,))
        with session(conninfo) as conn:
            assert _pid(conn) not in {terminated, raised, left_open}
