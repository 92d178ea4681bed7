"""Extract one table: a watermarked COPY streamed straight into CSV parts in storage.

Bytes go from the source's `COPY … TO STDOUT` to a part file and on to storage without
ever becoming Python row objects: PostgreSQL sends one CopyData message per row, so
cutting parts of `chunk_rows` rows is a counter, not a CSV parser. While part n
uploads, part n+1 is already being written.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import psycopg
from psycopg import sql

from dwh.core.catalog import Catalog, TableSpec
from dwh.core.faults import failpoint
from dwh.core.sqlfiles import engine_sql, read_sql
from dwh.ingest.drift import ENGINE_MANAGED, DriftError, check_table, quoted, relation_columns
from dwh.ingest.engine import Engine, ProgressFn, Throttle, no_progress
from dwh.ingest.holdback import Holder, SourceBound
from dwh.ingest.parts import exports_prefix, part_filename, run_glob
from dwh.ingest.runlog import RunLog
from dwh.ingest.storage import spool_dir

log = logging.getLogger(__name__)

_ONE_TICK = timedelta(microseconds=1)
_WRITE_BUFFER = 1 << 20

# Held around each COPY that reads the source: the flows pass a Prefect global
# concurrency slot (tasks/source_slots.py), so no more than N streams read one source.
SlotFn = Callable[[], AbstractContextManager[object]]


class SplitError(ValueError):
    """A catalog `split:` the source's data cannot honour (the column is not an integer)."""


class SourceVisibilityError(RuntimeError):
    """We cannot see every open source transaction, so a safe upper bound is unknown."""


@dataclass(frozen=True)
class KeyRange:
    """`first <= column < stop`: one range of a split extract."""

    first: int
    stop: int

    def describe(self, column: str) -> str:
        return f"{column} [{self.first:,}, {self.stop:,})"


def key_ranges(low: int, high: int, count: int) -> list[KeyRange]:
    """At most `count` disjoint ranges of equal width covering `low..high` (both inclusive)."""
    width = -(-(high - low + 1) // count)
    return [KeyRange(first, min(first + width, high + 1)) for first in range(low, high + 1, width)]


@dataclass(frozen=True)
class ColumnPlan:
    """Bronze data columns in order and the source expression that fills each."""

    columns: tuple[str, ...]
    select: sql.Composed

    @property
    def header(self) -> bytes:
        return (",".join(self.columns) + "\n").encode()


@dataclass(frozen=True)
class ExtractResult:
    table: str
    run_id: int
    rows: int
    size: int
    parts: int
    lower: datetime | None
    upper: datetime
    seconds: float
    csv_path: str
    holdback_seconds: float = 0.0  # how far `upper` sat below the source clock
    held_by: str | None = None  # the open source transaction that set `upper`, if one did


def bronze_columns(
    conn: psycopg.Connection[Any], catalog: Catalog, table: TableSpec, sql_dir: Path
) -> list[str]:
    relation = quoted(catalog.bronze_schema, table.name)
    columns = [c.name for c in relation_columns(conn, sql_dir, relation, ENGINE_MANAGED)]
    if not columns:
        msg = (
            f"bronze table {catalog.bronze_schema}.{table.name} does not exist: "
            f"run `dwh migrate {catalog.pipeline}`"
        )
        raise DriftError(msg)
    return columns


def plan_columns(
    catalog: Catalog,
    table: TableSpec,
    source: psycopg.Connection[Any],
    warehouse: psycopg.Connection[Any],
    sql_dir: Path,
) -> ColumnPlan:
    """Map every bronze column to a source expression after the drift check (seed §8).

    The check is `dwh drift`'s own (dwh/ingest/drift.py): a difference that would lose or
    corrupt data fails the table here, naming the column, before a row is read.
    """
    drift = check_table(catalog, table, source, warehouse, sql_dir)
    drift.raise_if_lossy(catalog, table)
    items: list[sql.Composable] = []
    for column in (c.name for c in drift.bronze):
        expr: sql.Composable = (
            sql.SQL(table.columns[column]) if column in table.columns else sql.Identifier(column)
        )
        if column in table.geometry:
            expr = sql.SQL("CASE WHEN {g} IS NULL THEN NULL ELSE ST_AsEWKT({g}) END").format(g=expr)
        items.append(sql.SQL("{} AS {}").format(expr, sql.Identifier(column)))
    return ColumnPlan(tuple(c.name for c in drift.bronze), sql.SQL(", ").join(items))


def source_bound(source: psycopg.Connection[Any], sql_dir: Path, where: str) -> SourceBound:
    """The source clock, lowered below the oldest open transaction (seed §5.2, late commits).

    The bound stays safe: it never skips past an open transaction. The session holding
    it is returned so the hold-back is recorded, checked and alerted on instead.
    """
    row = source.execute(read_sql(sql_dir / "engine" / "source_bounds.sql")).fetchone()
    assert row is not None  # noqa: S101  (an aggregate always returns a row)
    now, oldest_open, invisible, pid, application, state = row
    if invisible:
        msg = (
            f"{where}: {invisible} source session(s) are invisible to this role, so an open "
            "transaction could commit rows behind the watermark. Grant pg_read_all_stats "
            "to the source role."
        )
        raise SourceVisibilityError(msg)
    if oldest_open is not None and oldest_open <= now:
        holder = Holder(int(pid), application or "", state, oldest_open)
        return SourceBound(min(now, oldest_open - _ONE_TICK), now, holder)
    return SourceBound(now, now, None)


def source_upper_bound(source: psycopg.Connection[Any], sql_dir: Path, where: str) -> datetime:
    """Only the bound (see `source_bound`)."""
    return source_bound(source, sql_dir, where).upper


class PartWriter:
    """Writes CSV parts of at most `chunk_rows` rows and publishes each in the background."""

    def __init__(  # noqa: PLR0917  (one writer per run: all of these are its identity)
        self,
        engine: Engine,
        table: TableSpec,
        run_id: int,
        moment: datetime,
        header: bytes,
        spool: Path,
        chunk_rows: int,
        next_part: Callable[[], int] | None = None,
    ) -> None:
        self.engine = engine
        self.table = table
        self.run_id = run_id
        self.moment = moment
        self.header = header
        self.spool = spool
        self.chunk_rows = chunk_rows
        self.parts = 0
        self.size = 0
        # Writers of one split run share the numbering, so their part names never collide.
        self._next_part = next_part
        self._number = 0
        self._rows_in_part = 0
        self._file: IO[bytes] | None = None
        self._staged: Path | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dwh-publish")
        self._pending: list[Future[None]] = []

    def _key(self, part: int) -> str:
        name = part_filename(self.moment, self.engine.timezone, self.run_id, part)
        return f"{exports_prefix(self.engine.location, self.engine.catalog.pipeline, self.table.name)}/{name}"

    def _open(self) -> IO[bytes]:
        self.parts += 1
        self._number = self._next_part() if self._next_part else self.parts
        self._staged = self.engine.location.storage.staging_path(self._key(self._number), self.spool)
        handle = self._staged.open("wb", buffering=_WRITE_BUFFER)
        handle.write(self.header)
        self._rows_in_part = 0
        self._file = handle
        return handle

    def _close(self) -> None:
        if self._file is None or self._staged is None:
            return
        self._file.close()
        self._file = None
        staged, key = self._staged, self._key(self._number)
        self._pending.append(self._pool.submit(self.engine.location.storage.publish, staged, key))

    def write(self, row: Any) -> None:  # noqa: ANN401  (psycopg Buffer: bytes or memoryview)
        handle = self._file or self._open()
        handle.write(row)
        self.size += len(row)
        self._rows_in_part += 1
        if self._rows_in_part >= self.chunk_rows:
            self._close()

    def finish(self) -> None:
        """Publish the last part and wait for every upload; re-raise the first failure."""
        self._close()
        try:
            for future in self._pending:
                future.result()
        finally:
            self._pool.shutdown(wait=True)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._staged is not None:
            self._staged.unlink(missing_ok=True)
        self._pool.shutdown(wait=True, cancel_futures=True)


def _copy_statement(engine: Engine, table: TableSpec, plan: ColumnPlan) -> sql.Composed:
    catalog = engine.catalog
    source = sql.Identifier(catalog.source_schema_of(table), table.source_table)
    if table.mode.incremental:
        assert table.watermark is not None  # noqa: S101  (validated by the catalog)
        return engine_sql(
            engine.sql_dir,
            "extract_incremental",
            catalog,
            select=plan.select,
            source=source,
            watermark=sql.Identifier(table.watermark),
        )
    return engine_sql(engine.sql_dir, "extract_snapshot", catalog, select=plan.select, source=source)


def extract_table(
    engine: Engine,
    table: TableSpec,
    *,
    flow_run_id: UUID | None = None,
    progress: ProgressFn = no_progress,
    repair: bool = False,
    source_slot: SlotFn = nullcontext,
) -> ExtractResult:
    """Extract one table into exports/ and record the run as 'uploaded' (seed §4 Phase E).

    `repair` marks the run so its load overwrites rows bronze already has. Each COPY
    reading the source runs inside `source_slot()`.
    """
    catalog = engine.catalog
    where = f"table {catalog.pipeline}.{table.name}"
    started = time.monotonic()
    with (
        psycopg.connect(engine.source_conninfo, autocommit=True) as source,
        psycopg.connect(engine.warehouse_conninfo, autocommit=True) as warehouse,
    ):
        # The extract only reads: a catalog expression calling a function that writes fails.
        source.execute("SET default_transaction_read_only = on")
        runlog = RunLog(warehouse, catalog, engine.sql_dir)
        try:
            plan = plan_columns(catalog, table, source, warehouse, engine.sql_dir)
        except DriftError as exc:
            # Nothing is extracted, but the run log must say so: v_recent_failures,
            # `dwh verify` and the Grafana panel read it, not Prefect's states.
            runlog.failed(runlog.start(table.name, table.mode.value, None, None, flow_run_id), str(exc))
            raise
        lower = runlog.watermark(table.name) if table.mode.incremental else None
        bound = source_bound(source, engine.sql_dir, where)
        upper = bound.upper
        # Only an incremental table is held back by the bound; a snapshot reads everything.
        held = bound if table.mode.incremental else None
        run_id = runlog.start(
            table.name, table.mode.value, lower, upper, flow_run_id, bound=held, repair=repair
        )
        try:
            rows, size, parts = _extract_rows(
                engine, table, plan, source, run_id, (lower, upper), progress, source_slot
            )
        except BaseException as exc:
            try:
                runlog.failed(run_id, f"extract of {where} failed: {exc}")
            except psycopg.Error as log_exc:
                log.warning("could not record failure of run %s: %s", run_id, log_exc)
            raise
        csv_path = f"{exports_prefix(engine.location, catalog.pipeline, table.name)}/" + run_glob(
            upper, engine.timezone, run_id
        )
        runlog.uploaded(run_id, rows=rows, size=size, parts=parts, csv_path=csv_path)
    return ExtractResult(
        table=table.name,
        run_id=run_id,
        rows=rows,
        size=size,
        parts=parts,
        lower=lower,
        upper=upper,
        seconds=time.monotonic() - started,
        csv_path=csv_path,
        holdback_seconds=held.holdback_seconds if held else 0.0,
        held_by=held.holder.describe() if held and held.holder else None,
    )


def _check_row_count(reported: int, received: int) -> None:
    """Guard the one-row-per-CopyData assumption the part cutting relies on."""
    if reported != received:
        msg = f"COPY reported {reported} rows but {received} were received"
        raise RuntimeError(msg)


def split_ranges(
    engine: Engine, table: TableSpec, source: psycopg.Connection[Any], window: tuple[datetime, datetime]
) -> list[KeyRange]:
    """The key ranges of a split table's window; none when the window holds no row."""
    assert table.split is not None  # noqa: S101  (only called for a split table)
    assert table.watermark is not None  # noqa: S101  (an append table has one: catalog-validated)
    statement = engine_sql(
        engine.sql_dir,
        "extract_split_bounds",
        engine.catalog,
        source=sql.Identifier(engine.catalog.source_schema_of(table), table.source_table),
        watermark=sql.Identifier(table.watermark),
        column=sql.Identifier(table.split.column),
    )
    row = source.execute(statement, {"lower": window[0], "upper": window[1]}).fetchone()
    low, high = row or (None, None)
    if low is None or high is None:
        return []
    if not (isinstance(low, int) and isinstance(high, int)) or isinstance(low, bool):
        msg = (
            f"table {engine.catalog.pipeline}.{table.name}: split.column {table.split.column!r} "
            f"holds {type(low).__name__} values; a split needs an integer column"
        )
        raise SplitError(msg)
    return key_ranges(low, high, table.split.ranges)


def _extract_rows(  # noqa: PLR0917
    engine: Engine,
    table: TableSpec,
    plan: ColumnPlan,
    source: psycopg.Connection[Any],
    run_id: int,
    window: tuple[datetime | None, datetime],
    progress: ProgressFn,
    source_slot: SlotFn,
) -> tuple[int, int, int]:
    """Rows, bytes and parts of the run: one COPY, or one per key range of a split table."""
    lower, upper = window
    ranges: list[KeyRange] = []
    if table.split and lower:
        with source_slot():  # the min/max scan reads the source too
            ranges = split_ranges(engine, table, source, (lower, upper))
    if len(ranges) > 1:
        return _extract_ranges(engine, table, plan, run_id, (lower, upper), ranges, progress, source_slot)
    params = {"lower": lower, "upper": upper} if table.mode.incremental else None
    with source_slot():
        rows, writer = _stream(
            engine,
            table,
            plan,
            source,
            run_id,
            upper,
            (_copy_statement(engine, table, plan), params),
            Throttle(progress, table.name, "extract"),
        )
    return rows, writer.size, writer.parts


def _extract_ranges(  # noqa: PLR0917
    engine: Engine,
    table: TableSpec,
    plan: ColumnPlan,
    run_id: int,
    window: tuple[datetime | None, datetime],
    ranges: list[KeyRange],
    progress: ProgressFn,
    source_slot: SlotFn,
) -> tuple[int, int, int]:
    """Read the ranges at once, each on its own source connection, into parts of one run.

    The run is one row of extract_runs: it is marked uploaded (and its watermark can move)
    only when every range has published its parts; if one fails, the run fails and the
    next run moves every part it left to rejected/.
    """
    assert table.split is not None  # noqa: S101  (only called for a split table)
    assert table.watermark is not None  # noqa: S101  (an append table has one: catalog-validated)
    column = table.split.column
    statement = engine_sql(
        engine.sql_dir,
        "extract_incremental_range",
        engine.catalog,
        select=plan.select,
        source=sql.Identifier(engine.catalog.source_schema_of(table), table.source_table),
        watermark=sql.Identifier(table.watermark),
        column=sql.Identifier(column),
    )
    numbers, lock = itertools.count(1), threading.Lock()

    def next_part() -> int:
        with lock:
            return next(numbers)

    def read(key_range: KeyRange) -> tuple[int, PartWriter]:
        params = {"lower": window[0], "upper": window[1], "first": key_range.first, "stop": key_range.stop}
        with source_slot(), psycopg.connect(engine.source_conninfo, autocommit=True) as conn:
            conn.execute("SET default_transaction_read_only = on")
            report = Throttle(progress, f"{table.name} {key_range.describe(column)}", "extract")
            return _stream(
                engine, table, plan, conn, run_id, window[1], (statement, params), report, next_part
            )

    log.info("table %s: extracting %d ranges of %s at once", table.name, len(ranges), column)
    pool = ThreadPoolExecutor(max_workers=len(ranges), thread_name_prefix="dwh-range")
    try:
        results = [future.result() for future in [pool.submit(read, r) for r in ranges]]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return (
        sum(rows for rows, _ in results),
        sum(writer.size for _, writer in results),
        sum(writer.parts for _, writer in results),
    )


def _stream(  # noqa: PLR0917
    engine: Engine,
    table: TableSpec,
    plan: ColumnPlan,
    source: psycopg.Connection[Any],
    run_id: int,
    upper: datetime,
    copy_of: tuple[sql.Composed, dict[str, Any] | None],
    report: Throttle,
    next_part: Callable[[], int] | None = None,
) -> tuple[int, PartWriter]:
    chunk_rows = engine.catalog.chunk_rows_for(table)
    rows = 0
    with spool_dir() as spool:
        writer = PartWriter(engine, table, run_id, upper, plan.header, spool, chunk_rows, next_part)
        try:
            with source.cursor() as cur:
                with cur.copy(*copy_of) as copy:
                    for row in copy:
                        writer.write(row)
                        rows += 1
                        if rows & 0x3FFF == 0:
                            report(rows, writer.size)
                            failpoint("extract.streaming")
                _check_row_count(cur.rowcount, rows)
            writer.finish()
        except BaseException:
            writer.abort()
            raise
    report(rows, writer.size, done=True)
    return rows, writer
