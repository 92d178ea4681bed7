"""Delete reconciliation: which bronze rows the source no longer has, found by diffing keys in SQL.

An append or merge table never sees a delete: the extract reads rows above the
watermark, and a deleted row is simply absent. A table whose catalog entry sets
`reconcile_deletes` gets, after each load, a key diff: the source's keys stream by
`COPY … TO STDOUT` into a temp table of the warehouse (bytes, never Python rows), one
range of the key's first column at a time (`reconcile_chunk_keys` wide, so 20M
comments never sit in one temp table), and set-based SQL marks the bronze rows whose
key vanished (`_dwh_deleted_at`, with `_dwh_loaded_at` moved so a transform following
bronze sees them) and unmarks keys that came back. Nothing is deleted: the audit
trail holds. Each table's counts go to `<pipeline>_control.reconcile_runs`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from dwh.core.catalog import TableSpec
from dwh.core.copying import pipe_copy
from dwh.core.sqlfiles import render
from dwh.core.transient import StepError, is_transient
from dwh.ingest.engine import Engine

log = logging.getLogger(__name__)

Logger = logging.Logger | logging.LoggerAdapter[Any]


_ANALYZE = "ANALYZE dwh_source_keys"


class ReconcileError(StepError):
    """A reconciliation failed; the message names the table."""


@dataclass(frozen=True)
class ReconcileResult:
    table: str
    chunks: int
    source_keys: int
    marked_deleted: int
    restored: int
    seconds: float

    def describe(self) -> str:
        return (
            f"{self.table}: {self.source_keys:,} source keys in {self.chunks} chunk(s), "
            f"{self.marked_deleted:,} rows marked deleted, {self.restored:,} found again, "
            f"in {self.seconds:.1f} s"
        )


def _chunks(low: object, high: object, width: int) -> list[tuple[int, int] | None]:
    """Key ranges [lo, hi) over an integer first key column; one unbounded chunk otherwise."""
    if isinstance(low, int) and isinstance(high, int):
        return [(start, start + width) for start in range(low, high + 1, width)]
    return [None]


def _in_chunk(column: sql.Composable, chunk: tuple[int, int] | None) -> sql.Composable:
    if chunk is None:
        return sql.SQL("TRUE")
    return sql.SQL("{c} >= {lo} AND {c} < {hi}").format(
        c=column, lo=sql.Literal(chunk[0]), hi=sql.Literal(chunk[1])
    )


def reconcile_table(
    engine: Engine, table: TableSpec, *, flow_run_id: UUID | None = None, logger: Logger = log
) -> ReconcileResult:
    """Mark the bronze rows of `table` whose key the source no longer has; record the counts.

    Raises:
        ReconcileError: naming the table (a bronze table without `_dwh_deleted_at`, a
            lost connection); the failure is recorded in `reconcile_runs`.
    """
    catalog, folder = engine.catalog, engine.sql_dir / "engine"
    bronze = sql.Identifier(catalog.bronze_schema, table.name)
    source = sql.Identifier(catalog.source_schema_of(table), table.source_table)
    keys = sql.SQL(", ").join(sql.Identifier(k) for k in table.key)
    first = sql.Identifier(table.key[0])
    same_key = sql.SQL(" AND ").join(sql.SQL("s.{k} = b.{k}").format(k=sql.Identifier(k)) for k in table.key)
    record = render(folder / "reconcile_record.sql", control=sql.Identifier(catalog.control_schema))
    started = time.monotonic()
    started_at = datetime.now().astimezone()
    totals = [0, 0, 0]
    chunks: list[tuple[int, int] | None] = []
    try:
        with psycopg.connect(engine.warehouse_conninfo) as wh, psycopg.connect(engine.source_conninfo) as src:
            row = wh.execute(
                render(folder / "reconcile_range.sql", first_key=first, bronze_table=bronze)
            ).fetchone()
            wh.commit()
            low, high, read_from = row or (None, None, started_at)
            chunks = [] if low is None else _chunks(low, high, table.reconcile_chunk_keys)
            for chunk in chunks:
                with wh.transaction():
                    wh.execute(render(folder / "reconcile_stage.sql", keys=keys, bronze_table=bronze))
                    copy_out = render(
                        folder / "reconcile_source_keys.sql",
                        keys=keys,
                        source_table=source,
                        in_chunk=_in_chunk(first, chunk),
                    )
                    pipe_copy(src, copy_out, wh, sql.SQL("COPY dwh_source_keys FROM STDIN"))
                    src.commit()
                    wh.execute(_ANALYZE)  # the diff plans with the chunk's real row count
                    counted = wh.execute(
                        render(
                            folder / "reconcile_mark.sql",
                            bronze_table=bronze,
                            in_chunk=_in_chunk(sql.SQL("b.{}").format(first), chunk),
                            same_key=same_key,
                        ),
                        {"started": read_from},
                    ).fetchone()
                    for i, n in enumerate(counted or (0, 0, 0)):
                        totals[i] += int(n)
            source_keys, marked, restored = totals
            result = ReconcileResult(
                table.name, len(chunks), source_keys, marked, restored, time.monotonic() - started
            )
            wh.execute(record, (table.name, "succeeded", flow_run_id, started_at, len(chunks), *totals, None))
            wh.commit()
    except psycopg.Error as exc:
        message = f"{catalog.pipeline}.{table.name}: delete reconciliation failed: {exc}"
        _record_failure(
            engine,
            record,
            (table.name, "failed", flow_run_id, started_at, len(chunks), None, None, None, message[:4000]),
        )
        raise ReconcileError(message, transient=is_transient(exc)) from exc
    logger.info("%s", result.describe())
    return result


def _record_failure(engine: Engine, record: sql.Composed, params: tuple[Any, ...]) -> None:
    try:
        with psycopg.connect(engine.warehouse_conninfo, autocommit=True) as conn:
            conn.execute(record, params)
    except psycopg.Error as exc:
        log.warning("could not record the failed reconciliation: %s", exc)
