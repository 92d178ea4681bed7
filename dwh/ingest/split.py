"""A split extract: an append table's window read as disjoint key ranges at once.

A catalog `split: {column, ranges}` cuts the window's key span (min..max of an integer
key column, read under a source slot) into ranges read in parallel, each on its own
source connection and slot, into parts of one run; the run is uploaded only when every
range has published its parts.
"""

from __future__ import annotations

import itertools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from dwh.core.catalog import TableSpec
from dwh.core.sqlfiles import engine_sql, window_parts
from dwh.ingest.copy_out import PartWriter, PublishedFn, SlotFn, stream_copy
from dwh.ingest.engine import Engine, ProgressFn, Throttle

log = logging.getLogger(__name__)


class SplitError(ValueError):
    """A catalog `split:` the source's data cannot honour (the column is not an integer)."""


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


def split_ranges(
    engine: Engine, table: TableSpec, source: psycopg.Connection[Any], window: tuple[datetime, datetime]
) -> list[KeyRange]:
    """The key ranges of a split table's window; none when the window holds no row."""
    assert table.split is not None  # noqa: S101  (only called for a split table)
    statement = engine_sql(
        engine.sql_dir,
        "extract_split_bounds",
        engine.catalog,
        column=sql.Identifier(table.split.column),
        **window_parts(engine.catalog, table),
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


def extract_ranges(  # noqa: PLR0917
    engine: Engine,
    table: TableSpec,
    columns: tuple[sql.Composed, bytes],
    run_id: int,
    window: tuple[datetime | None, datetime],
    ranges: list[KeyRange],
    progress: ProgressFn,
    source_slot: SlotFn,
    published: PublishedFn,
) -> tuple[int, int, int]:
    """Read the ranges at once, each on its own source connection, into parts of one run.

    `columns` is the run's select list and CSV header (the extract's column plan).

    The run is one row of extract_runs: it is marked uploaded (and its watermark can move)
    only when every range has published its parts; if one fails, the run fails and the
    next run moves every part it left to rejected/.
    """
    assert table.split is not None  # noqa: S101  (only called for a split table)
    column = table.split.column
    statement = engine_sql(
        engine.sql_dir,
        "extract_incremental_range",
        engine.catalog,
        select=columns[0],
        column=sql.Identifier(column),
        **window_parts(engine.catalog, table),
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
            return stream_copy(
                engine,
                table,
                columns[1],
                conn,
                run_id,
                window[1],
                (statement, params),
                report,
                next_part,
                published,
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
