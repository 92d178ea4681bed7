"""Adopt a CSV that did not come from our extract: split it into parts and register a run.

Teams moving from the seed's n8n pipeline have single-file exports
(`20260424_1400_EAT.csv`) in their buckets, and vendors hand over dumps. polars splits
such a file into parts of at most `chunk_rows` rows with a streaming sink (flat memory,
every cell kept as text so bytes, empty strings and NULLs survive exactly), the parts
go to exports/ under a new run id, and the normal idempotent load takes it from there:
ON CONFLICT makes an overlap with rows already in bronze harmless.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import psycopg

from dwh.core.catalog import TableSpec
from dwh.ingest.engine import Engine
from dwh.ingest.extract import ExtractResult, bronze_columns
from dwh.ingest.parts import exports_prefix, part_filename, run_glob
from dwh.ingest.runlog import RunLog
from dwh.ingest.storage import spool_dir


class CsvImportError(ValueError):
    """The file does not fit the bronze table; the message names file and column."""


def _check_header(path: Path, columns: list[str], where: str) -> None:
    import polars as pl  # noqa: PLC0415 - imported where used: every chain imports this module's error

    header = list(pl.scan_csv(path, infer_schema=False).collect_schema().names())
    if header != columns:
        missing = [c for c in columns if c not in header]
        extra = [c for c in header if c not in columns]
        detail = []
        if missing:
            detail.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            detail.append(f"unknown column(s) {', '.join(extra)}")
        if not detail:
            detail.append(f"columns out of order: expected {', '.join(columns)}")
        msg = f"{where}: {path} line 1 (header): {'; '.join(detail)}"
        raise CsvImportError(msg)


def _check_no_nul(path: Path, where: str) -> None:
    """PostgreSQL text cannot hold a NUL byte: COPY would refuse the part at every load and
    block the table. Refused here, with its line, before anything is registered."""
    lines = 1
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            at = chunk.find(b"\x00")
            if at >= 0:
                line = lines + chunk.count(b"\n", 0, at)
                msg = f"{where}: {path} line {line}: a NUL byte (0x00), which PostgreSQL text cannot hold"
                raise CsvImportError(msg)
            lines += chunk.count(b"\n")


def split_csv(path: Path, into: Path, chunk_rows: int) -> list[tuple[Path, int]]:
    """Stream `path` into CSV files of at most `chunk_rows` rows; return (file, rows) in order."""
    import polars as pl  # noqa: PLC0415 - as in _check_header

    into.mkdir(parents=True, exist_ok=True)
    pl.scan_csv(path, infer_schema=False).sink_csv(
        pl.PartitionBy(into, max_rows_per_file=chunk_rows, approximate_bytes_per_file=None),
        mkdir=True,
    )
    parts = sorted(p for p in into.rglob("*.csv") if p.is_file())
    return [(p, int(pl.scan_csv(p, infer_schema=False).select(pl.len()).collect().item())) for p in parts]


def import_csv(engine: Engine, table: TableSpec, path: Path) -> ExtractResult:
    """Register `path` as a new run of `table` with its parts waiting in exports/."""
    catalog = engine.catalog
    where = f"table {catalog.pipeline}.{table.name}"
    started = time.monotonic()
    if not path.is_file():
        msg = f"{where}: no such file {path}"
        raise CsvImportError(msg)
    _check_no_nul(path, where)
    with psycopg.connect(engine.warehouse_conninfo, autocommit=True) as warehouse:
        _check_header(path, bronze_columns(warehouse, catalog, table, engine.sql_dir), where)
        runlog = RunLog(warehouse, catalog, engine.sql_dir)
        moment = warehouse.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        # No extract window: the watermark stays where it is (GREATEST ignores NULL).
        run_id = runlog.start(table.name, table.mode.value, None, None, None)
        storage = engine.location.storage
        prefix = exports_prefix(engine.location, catalog.pipeline, table.name)
        try:
            with spool_dir() as spool:
                parts = split_csv(path, spool / "split", catalog.chunk_rows_for(table))
                for number, (part, _) in enumerate(parts, start=1):
                    key = f"{prefix}/{part_filename(moment, engine.timezone, run_id, number)}"
                    staged = storage.staging_path(key, spool)
                    shutil.move(part, staged)  # the staging area may be another filesystem
                    storage.publish(staged, key)
        except BaseException as exc:
            runlog.failed(run_id, f"import of {path} into {where} failed: {exc}")
            raise
        rows = sum(n for _, n in parts)
        size = path.stat().st_size
        csv_path = f"{prefix}/{run_glob(moment, engine.timezone, run_id)}"
        runlog.uploaded(run_id, rows=rows, size=size, parts=len(parts), csv_path=csv_path)
    return ExtractResult(
        table=table.name,
        run_id=run_id,
        rows=rows,
        size=size,
        parts=len(parts),
        lower=None,
        upper=moment,
        seconds=time.monotonic() - started,
        csv_path=csv_path,
    )
