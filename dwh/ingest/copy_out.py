"""One source `COPY … TO STDOUT` streamed into CSV parts that publish in the background.

The byte path of every extract (a whole table or one key range of a split table):
PostgreSQL sends one CopyData message per row, so cutting parts of `chunk_rows` rows is
a counter, not a CSV parser. Each part streams into storage as it is written (8 MB
chunks upload behind COPY on S3), and while part n completes, part n+1 is being written.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from dwh.core.catalog import TableSpec
from dwh.core.faults import failpoint
from dwh.ingest.engine import Engine, Throttle
from dwh.ingest.parts import exports_prefix, part_filename
from dwh.ingest.storage import PartSink

# Held around each COPY that reads the source: the flows pass a Prefect global
# concurrency slot (tasks/source_slots.py), so no more than N streams read one source.
SlotFn = Callable[[], AbstractContextManager[object]]
# Told the key of each part once it is visible in exports/ (a load following the run).
PublishedFn = Callable[[str], None]


def _unheard(_: str) -> None:
    """Default: nobody follows the run."""


class PartWriter:
    """Writes CSV parts of at most `chunk_rows` rows and publishes each in the background."""

    def __init__(  # noqa: PLR0917  (one writer per run: all of these are its identity)
        self,
        engine: Engine,
        table: TableSpec,
        run_id: int,
        moment: datetime,
        header: bytes,
        chunk_rows: int,
        next_part: Callable[[], int] | None = None,
        published: PublishedFn = _unheard,
    ) -> None:
        self.engine = engine
        self.table = table
        self.run_id = run_id
        self.moment = moment
        self.header = header
        self.chunk_rows = chunk_rows
        self.parts = 0
        self.size = 0
        # Writers of one split run share the numbering, so their part names never collide.
        self._next_part = next_part
        self._number = 0
        self._published = published
        self._rows_in_part = 0
        self._sink: PartSink | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dwh-publish")
        self._pending: list[Future[None]] = []

    def _key(self, part: int) -> str:
        name = part_filename(self.moment, self.engine.timezone, self.run_id, part)
        return f"{exports_prefix(self.engine.location, self.engine.catalog.pipeline, self.table.name)}/{name}"

    def _open(self) -> PartSink:
        self.parts += 1
        self._number = self._next_part() if self._next_part else self.parts
        sink = self.engine.location.storage.open_write(self._key(self._number))
        sink.write(self.header)
        self._rows_in_part = 0
        self._sink = sink
        return sink

    def _close(self) -> None:
        if self._sink is None:
            return
        sink, self._sink = self._sink, None
        self._pending.append(self._pool.submit(self._publish, sink, self._key(self._number)))

    def _publish(self, sink: PartSink, key: str) -> None:
        sink.commit()
        self._published(key)

    def write(self, row: Any) -> None:  # noqa: ANN401  (psycopg Buffer: bytes or memoryview)
        sink = self._sink or self._open()
        sink.write(row)
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
        if self._sink is not None:
            self._sink.abort()
            self._sink = None
        self._pool.shutdown(wait=True, cancel_futures=True)


def check_row_count(reported: int, received: int) -> None:
    """Guard the one-row-per-CopyData assumption the part cutting relies on."""
    if reported != received:
        msg = f"COPY reported {reported} rows but {received} were received"
        raise RuntimeError(msg)


def stream_copy(  # noqa: PLR0917
    engine: Engine,
    table: TableSpec,
    header: bytes,
    source: psycopg.Connection[Any],
    run_id: int,
    upper: datetime,
    copy_of: tuple[sql.Composed, dict[str, Any] | None],
    report: Throttle,
    next_part: Callable[[], int] | None = None,
    published: PublishedFn = _unheard,
) -> tuple[int, PartWriter]:
    """Run one `COPY … TO STDOUT` into parts of the run; rows read and the writer (its size, parts)."""
    chunk_rows = engine.catalog.chunk_rows_for(table)
    rows = 0
    writer = PartWriter(engine, table, run_id, upper, header, chunk_rows, next_part, published)
    try:
        with source.cursor() as cur:
            with cur.copy(*copy_of) as copy:
                for row in copy:
                    writer.write(row)
                    rows += 1
                    if rows & 0x3FFF == 0:
                        report(rows, writer.size)
                        failpoint("extract.streaming")
            check_row_count(cur.rowcount, rows)
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    report(rows, writer.size, done=True)
    return rows, writer
