"""A datamart's per-entity steps on several sessions, each over a share of the targets.

A datamart whose middle steps compute every target entity from the state alone (the
users: import, state, metrics, profile) says so in a `PARALLEL` file of its folder.
The refresh's own transaction picks the targets, exports its snapshot and hands each
extra session (REPEATABLE READ, that snapshot) a share of the target tables and a copy
of the small ones; the sessions run the steps side by side, and their result tables
stream back by binary COPY into the refresh's session, which writes the datamart alone.
So the rows are those one session computes, the datamart still changes in one
transaction, and a failed share leaves nothing behind: the extra sessions write only
temp tables and roll back.

`PARALLEL`, one `key: values` line each (`#` starts a comment):

    setup: 05_settings.sql                # steps every session runs first (SET LOCAL)
    steps: 20_import.sql 35_profile.sql   # the first and last step run per share
    share: dm_targets.id dm_moved.id      # split over the sessions by that integer column
    copy: dm_run dm_period                # every session gets these whole
    keep: dm_metrics dm_profile           # what the later steps read, gathered back
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.errors import QueryCanceled

from dwh.analytics.steps import Conn, Logger, TransformError, run_steps
from dwh.core.copying import pipe_copy

PARALLEL_FILE = "PARALLEL"
_KEYS = ("setup", "steps", "share", "copy", "keep")

_COLUMNS = (
    "SELECT string_agg(format('%%I %%s', attname, format_type(atttypid, atttypmod)), ', ' ORDER BY attnum) "
    "FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped"
)


@dataclass(frozen=True)
class ParallelPlan:
    """What a datamart's `PARALLEL` file declares (see the module docstring)."""

    setup: tuple[str, ...]
    first: str
    last: str
    share: tuple[tuple[str, str], ...]  # (table, integer column)
    copy: tuple[str, ...]
    keep: tuple[str, ...]

    def split(self, files: list[Path]) -> tuple[list[Path], list[Path], list[Path], list[Path]]:
        """The steps before the shared range, in it, after it, and the setup steps."""
        names = [path.name for path in files]
        start, end = names.index(self.first), names.index(self.last) + 1
        setup = [path for path in files[:start] if path.name in self.setup]
        return files[:start], files[start:end], files[end:], setup


def read_plan(folder: Path, files: list[Path]) -> ParallelPlan | None:
    """The folder's `PARALLEL` plan, checked against its steps; None when it has none.

    Raises:
        ValueError: a line, key or step name that does not fit (file and line named).
    """
    path = folder / PARALLEL_FILE
    if not path.is_file():
        return None
    found: dict[str, tuple[str, ...]] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, colon, values = line.partition(":")
        key = key.strip()
        if not colon or key not in _KEYS or key in found or not values.split():
            expected = f"one of {', '.join(_KEYS)} once, as `key: values`"
            msg = f"{path}:{number}: expected {expected}, got {raw.strip()!r}"
            raise ValueError(msg)
        found[key] = tuple(values.split())
    missing = [key for key in _KEYS if key not in found]
    if missing:
        msg = f"{path}: missing {', '.join(missing)}"
        raise ValueError(msg)
    names = [step.name for step in files]
    unknown = [name for name in (*found["setup"], *found["steps"]) if name not in names]
    shares = [entry.partition(".") for entry in found["share"]]
    if unknown or len(found["steps"]) != len(("first", "last")) or any(not column for _, _, column in shares):
        msg = (
            f"{path}: `steps` names the first and last step of the range and `share` table.column "
            f"entries; steps not in this datamart: {unknown or 'none'}"
        )
        raise ValueError(msg)
    first, last = found["steps"]
    late_setup = any(names.index(step) >= names.index(first) for step in found["setup"])
    if names.index(first) > names.index(last) or late_setup:
        msg = f"{path}: setup steps must come before {first}, and {first} before {last}"
        raise ValueError(msg)
    return ParallelPlan(
        setup=found["setup"],
        first=first,
        last=last,
        share=tuple((table, column) for table, _, column in shares),
        copy=found["copy"],
        keep=found["keep"],
    )


def share_count(conn: Conn, plan: ParallelPlan, sessions: int, min_share: int) -> int:
    """How many sessions the shares go to: at most `sessions`, each with ≥ `min_share` rows."""
    counts = sql.SQL(" + ").join(
        sql.SQL("(SELECT count(*) FROM {})").format(sql.Identifier(table)) for table, _ in plan.share
    )
    row = conn.execute(sql.SQL("SELECT {}").format(counts)).fetchone()
    rows = int(row[0]) if row else 0
    return max(1, min(sessions, rows // max(min_share, 1)))


def _columns(conn: Conn, table: str) -> sql.Composable:
    """The temp table's column definitions, to create its twin on another session."""
    row = conn.execute(_COLUMNS, (f"pg_temp.{table}",)).fetchone()
    if not row or not row[0]:
        msg = f"{PARALLEL_FILE} names temp table {table}, which no step before it created"
        raise TransformError(msg)
    return sql.SQL(row[0])


def _stream(source: Conn, query: sql.Composable, target: Conn, table: str) -> None:
    """Rows of `query` on one session into temp `table` of another, binary COPY, block by block."""
    into = sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(sql.Identifier(table))
    pipe_copy(source, sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(query), target, into)


def _create(conn: Conn, table: str, columns: sql.Composable) -> None:
    conn.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(sql.Identifier(table), columns))


def _open_session(conninfo: str, snapshot: str) -> Conn:
    """A session that sees exactly what the refresh's transaction saw when it exported `snapshot`."""
    conn = psycopg.connect(conninfo)
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
    except BaseException:
        conn.close()
        raise
    return conn


def run_shared(
    conn: Conn,
    conninfo: str,
    plan: ParallelPlan,
    *,
    steps: list[Path],
    setup: list[Path],
    shares: int,
    parts: dict[str, sql.Composable],
    logger: Logger,
) -> bool:
    """Run `steps` on up to `shares` sessions over shares of the targets; gather `keep` into `conn`.

    A warehouse that refuses the extra sessions (its connection limits) gets a warning
    and False: the caller runs the steps on its own session, as without a plan.

    Raises:
        TransformError: a step failed in one of the sessions (file and line named); the
            others are cancelled and nothing reaches `conn`.
    """
    started = time.monotonic()
    row = conn.execute("SELECT pg_export_snapshot()").fetchone()
    snapshot = str(row[0]) if row else ""
    with ExitStack() as stack:
        sessions: list[Conn] = []
        try:
            while len(sessions) < shares:
                sessions.append(stack.enter_context(_open_session(conninfo, snapshot)))
        except psycopg.OperationalError as exc:
            logger.warning(
                "%s to %s: %d of %d extra warehouse sessions opened (%s)",
                plan.first,
                plan.last,
                len(sessions),
                shares,
                (str(exc).strip().splitlines() or [type(exc).__name__])[-1],
            )
        if len(sessions) < 2:  # noqa: PLR2004 - one extra session would only copy the work
            return False
        _hand_out(conn, sessions, plan)
        _side_by_side(sessions, [*setup, *steps], parts, logger)
        _gather(conn, sessions, plan.keep)
        for session in sessions:
            session.rollback()  # they wrote temp tables only
    logger.debug(
        "%s to %s on %d sessions: %.2f s", plan.first, plan.last, len(sessions), time.monotonic() - started
    )
    return True


def _hand_out(conn: Conn, sessions: list[Conn], plan: ParallelPlan) -> None:
    """Each session gets the `copy` tables whole and its share of the `share` tables."""
    tables: list[tuple[str, str | None]] = [*((table, None) for table in plan.copy), *plan.share]
    for table, column in tables:
        columns, name = _columns(conn, table), sql.Identifier(table)
        for index, session in enumerate(sessions):
            rows = (
                sql.SQL("TABLE {}").format(name)
                if column is None
                else sql.SQL("SELECT * FROM {} WHERE mod(abs({}::bigint), {}) = {}").format(
                    name, sql.Identifier(column), len(sessions), index
                )
            )
            _create(session, table, columns)
            _stream(conn, rows, session, table)
            session.execute(sql.SQL("ANALYZE {}").format(name))


def _side_by_side(
    sessions: list[Conn], steps: list[Path], parts: dict[str, sql.Composable], logger: Logger
) -> None:
    """The steps on every session at once, one thread each; the first failure is raised."""
    with ThreadPoolExecutor(max_workers=len(sessions), thread_name_prefix="datamart-share") as pool:
        futures = [pool.submit(run_steps, session, steps, parts, logger) for session in sessions]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if any(future.exception() for future in done):
            for session in sessions:  # the other shares' work is lost anyway
                session.cancel_safe()
    errors = [error for future in futures if (error := future.exception()) is not None]
    if errors:
        # the share that failed, not one cancelled because of it
        raise next((e for e in errors if not isinstance(e.__cause__, QueryCanceled)), errors[0])


def _gather(conn: Conn, sessions: list[Conn], tables: tuple[str, ...]) -> None:
    """Every session's rows of `tables` into temp tables of the same name on `conn`."""
    for table in tables:
        _create(conn, table, _columns(sessions[0], table))
        for session in sessions:
            _stream(session, sql.SQL("TABLE {}").format(sql.Identifier(table)), conn, table)
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
