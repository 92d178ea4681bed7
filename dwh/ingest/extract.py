"""Extract one table: a watermarked COPY streamed straight into CSV parts in storage.

Bytes go from the source's `COPY … TO STDOUT` to a part file and on to storage without
ever becoming Python row objects (dwh/ingest/copy_out.py); a table with a catalog
`split:` reads its window as key ranges at once (dwh/ingest/split.py). Here: the drift
check, the source bound, and the run log around them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from dwh.core.catalog import Catalog, TableSpec
from dwh.core.schedule import load_due
from dwh.core.settings import RunSettings
from dwh.core.sqlfiles import engine_sql, read_sql, window_parts
from dwh.ingest.copy_out import PublishedFn, SlotFn, stream_copy
from dwh.ingest.drift import ENGINE_MANAGED, DriftError, check_table, quoted, relation_columns
from dwh.ingest.engine import Engine, ProgressFn, Throttle, no_progress
from dwh.ingest.feed import PartFeed
from dwh.ingest.holdback import Holder, SourceBound
from dwh.ingest.parts import exports_prefix, run_glob
from dwh.ingest.runlog import RunLog
from dwh.ingest.sessions import session
from dwh.ingest.split import KeyRange, extract_ranges, split_ranges

log = logging.getLogger(__name__)

_ONE_TICK = timedelta(microseconds=1)
_WRITE_BUFFER = 1 << 20


class SourceVisibilityError(RuntimeError):
    """We cannot see every open source transaction, so a safe upper bound is unknown."""


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


def _copy_statement(engine: Engine, table: TableSpec, plan: ColumnPlan) -> sql.Composed:
    catalog = engine.catalog
    if table.mode.incremental:
        parts = window_parts(catalog, table)
        return engine_sql(engine.sql_dir, "extract_incremental", catalog, select=plan.select, **parts)
    source = sql.Identifier(catalog.source_schema_of(table), table.source_table)
    return engine_sql(engine.sql_dir, "extract_snapshot", catalog, select=plan.select, source=source)


def extract_table(
    engine: Engine,
    table: TableSpec,
    *,
    flow_run_id: UUID | None = None,
    progress: ProgressFn = no_progress,
    repair: bool = False,
    source_slot: SlotFn = nullcontext,
    feed: PartFeed | None = None,
) -> ExtractResult:
    """Extract one table into exports/ and record the run as 'uploaded' (seed §4 Phase E).

    `repair` marks the run so its load overwrites rows bronze already has. Each COPY
    reading the source runs inside `source_slot()`. A `feed` hears of the run, each
    part once published and the run's end, for a load that follows it.
    """
    where = f"table {engine.catalog.pipeline}.{table.name}"
    started = time.monotonic()
    with _sessions(engine) as (source, warehouse):
        runlog = RunLog(warehouse, engine.catalog, engine.sql_dir)
        window = _open_window(engine, table, source, runlog, flow_run_id)
        run_id = window.start(runlog, repair=repair)
        feed = feed or PartFeed()
        feed.started(run_id, repair=repair)
        try:
            rows, size, parts = _extract_rows(
                engine,
                table,
                window.plan,
                source,
                run_id,
                (window.lower, window.upper),
                progress,
                source_slot,
                partial(feed.published, run_id),
            )
            result = window.result(engine, run_id, rows=rows, size=size, parts=parts, started=started)
            runlog.uploaded(run_id, rows=rows, size=size, parts=parts, csv_path=result.csv_path)
        except BaseException as exc:
            feed.ended(run_id, uploaded=False)
            try:
                runlog.failed(run_id, f"extract of {where} failed: {exc}")
            except psycopg.Error as log_exc:
                log.warning("could not record failure of run %s: %s", run_id, log_exc)
            raise
        feed.ended(run_id, uploaded=True)
    return result


def record_quiet_window(
    engine: Engine, table: TableSpec, warehouse: psycopg.Connection[Any], *, flow_run_id: UUID | None = None
) -> ExtractResult | None:
    """Record an incremental table's run as loaded when its window holds no row; else None.

    A table with nothing new cost an extract and a load subflow (a dozen round trips to
    the Prefect server) to record an empty run, which made a quiet estate of hundreds of
    tables slow to check. One `EXISTS` on the window answers first, and an empty window
    is recorded exactly as extract and load would record it: the same drift check,
    bounds and hold-back, and the watermark moved to the upper bound, in one
    transaction. Only where that query is cheap (`_probe_is_cheap`): an index leads with
    the watermark column, or the table is small enough to scan once more before an
    extract that finds rows.
    """
    if not table.mode.incremental:
        return None
    try:
        return _record_if_quiet(engine, table, warehouse, flow_run_id)
    except psycopg.OperationalError as exc:
        # Only a shortcut: the extract that follows retries what was transient.
        log.info(
            "table %s.%s: window probe failed (%s); extracting", engine.catalog.pipeline, table.name, exc
        )
        return None


def _record_if_quiet(
    engine: Engine, table: TableSpec, warehouse: psycopg.Connection[Any], flow_run_id: UUID | None
) -> ExtractResult | None:
    started = time.monotonic()
    with _source_session(engine) as source:
        if not _probe_is_cheap(engine, table, source):
            return None
        runlog = RunLog(warehouse, engine.catalog, engine.sql_dir)
        window = _open_window(engine, table, source, runlog, flow_run_id)
        if _window_has_rows(engine, table, source, window):
            return None
        due = load_due(engine.catalog, table, datetime.now(UTC))
        with warehouse.transaction():
            run_id = window.start(runlog)
            result = window.result(engine, run_id, rows=0, size=0, parts=0, started=started)
            runlog.uploaded(run_id, rows=0, size=0, parts=0, csv_path=result.csv_path)
            runlog.loaded(run_id, rows_loaded=0, rows_skipped=0, due_at=due.by)
    return result


# The extract only reads: a catalog expression calling a function that writes fails.
_READ_ONLY = "SET default_transaction_read_only = on"


def _source_session(engine: Engine) -> AbstractContextManager[psycopg.Connection[Any]]:
    """An autocommit source session that may only read.

    Within a parent run the chains hand it on (dwh/ingest/sessions.py): the probe's
    session serves the extract that follows it, and then the next table.
    """
    return session(engine.source_conninfo, _READ_ONLY)


@contextmanager
def _sessions(engine: Engine) -> Iterator[tuple[psycopg.Connection[Any], psycopg.Connection[Any]]]:
    """A read-only source session and an autocommit warehouse session for one run."""
    with _source_session(engine) as source, session(engine.warehouse_conninfo) as warehouse:
        yield source, warehouse


@dataclass(frozen=True)
class _Window:
    """What a run will read: its columns and its (lower, upper] window on the source clock."""

    table: TableSpec
    plan: ColumnPlan
    lower: datetime | None
    bound: SourceBound
    flow_run_id: UUID | None

    @property
    def upper(self) -> datetime:
        return self.bound.upper

    @property
    def held(self) -> SourceBound | None:
        """Only an incremental table is held back by the bound; a snapshot reads everything."""
        return self.bound if self.table.mode.incremental else None

    def start(self, runlog: RunLog, *, repair: bool = False) -> int:
        mode = self.table.mode.value
        return runlog.start(
            self.table.name, mode, self.lower, self.upper, self.flow_run_id, bound=self.held, repair=repair
        )

    def result(
        self, engine: Engine, run_id: int, *, rows: int, size: int, parts: int, started: float
    ) -> ExtractResult:
        held = self.held
        prefix = exports_prefix(engine.location, engine.catalog.pipeline, self.table.name)
        return ExtractResult(
            table=self.table.name,
            run_id=run_id,
            rows=rows,
            size=size,
            parts=parts,
            lower=self.lower,
            upper=self.upper,
            seconds=time.monotonic() - started,
            csv_path=f"{prefix}/" + run_glob(self.upper, engine.timezone, run_id),
            holdback_seconds=held.holdback_seconds if held else 0.0,
            held_by=held.holder.describe() if held and held.holder else None,
        )


def _open_window(
    engine: Engine,
    table: TableSpec,
    source: psycopg.Connection[Any],
    runlog: RunLog,
    flow_run_id: UUID | None,
) -> _Window:
    """Check drift, read the watermark and the source bound; a drifted table's failure is logged."""
    catalog = engine.catalog
    try:
        plan = plan_columns(catalog, table, source, runlog.conn, engine.sql_dir)
    except DriftError as exc:
        # Nothing is extracted, but the run log must say so: v_recent_failures,
        # `dwh verify` and the Grafana panel read it, not Prefect's states.
        runlog.failed(runlog.start(table.name, table.mode.value, None, None, flow_run_id), str(exc))
        raise
    lower = runlog.watermark(table.name) if table.mode.incremental else None
    bound = source_bound(source, engine.sql_dir, f"table {catalog.pipeline}.{table.name}")
    return _Window(table, plan, lower, bound, flow_run_id)


def _probe_is_cheap(engine: Engine, table: TableSpec, source: psycopg.Connection[Any]) -> bool:
    """Whether the window probe costs less than the extract and load subflows it may spare.

    With a valid btree index leading with the watermark it reads the index. Without
    one it scans the table, which an extract that then finds rows scans again: worth it
    only for a plain table whose heap is within `DWH_QUIET_PROBE_SCAN_MB`, where a scan
    takes milliseconds and the two subflows a few hundred.
    """
    params = {
        "schema": engine.catalog.source_schema_of(table),
        "table": table.source_table,
        "column": table.watermark,
    }
    row = source.execute(read_sql(engine.sql_dir / "engine" / "quiet_probe.sql"), params).fetchone()
    if row is None:
        return False
    indexed, heap_bytes = row
    limit = RunSettings().quiet_probe_scan_mb * 2**20
    return bool(indexed) or (heap_bytes is not None and limit > 0 and heap_bytes <= limit)


def _window_has_rows(
    engine: Engine, table: TableSpec, source: psycopg.Connection[Any], window: _Window
) -> bool:
    statement = engine_sql(
        engine.sql_dir, "window_has_rows", engine.catalog, **window_parts(engine.catalog, table)
    )
    row = source.execute(statement, {"lower": window.lower, "upper": window.upper}).fetchone()
    return bool(row and row[0])


def _extract_rows(  # noqa: PLR0917
    engine: Engine,
    table: TableSpec,
    plan: ColumnPlan,
    source: psycopg.Connection[Any],
    run_id: int,
    window: tuple[datetime | None, datetime],
    progress: ProgressFn,
    source_slot: SlotFn,
    published: PublishedFn,
) -> tuple[int, int, int]:
    """Rows, bytes and parts of the run: one COPY, or one per key range of a split table.

    Each COPY holds `source_slot()`; `published` hears of each part once it is visible.
    """
    lower, upper = window
    ranges: list[KeyRange] = []
    if table.split and lower:
        with source_slot():  # the min/max scan reads the source too
            ranges = split_ranges(engine, table, source, (lower, upper))
    if len(ranges) > 1:
        return extract_ranges(
            engine,
            table,
            (plan.select, plan.header),
            run_id,
            (lower, upper),
            ranges,
            progress,
            source_slot,
            published,
        )
    params = {"lower": lower, "upper": upper} if table.mode.incremental else None
    with source_slot():
        rows, writer = stream_copy(
            engine,
            table,
            plan.header,
            source,
            run_id,
            upper,
            (_copy_statement(engine, table, plan), params),
            Throttle(progress, table.name, "extract"),
            published=published,
        )
    return rows, writer.size, writer.parts
