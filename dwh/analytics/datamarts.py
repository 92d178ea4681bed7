"""Datamarts of a pipeline: the set-based refresh steps of `sql/<pipeline>/marts/<datamart>/`.

Each datamart is a folder of `NN_name.sql` steps run in one transaction: pick the
targets (the entities the ETL marked, or all of them for a full rebuild), recompute
their rows from the star schema, re-rank, clear the marks that were handled. Both
modes run the same statements over different target sets, so they produce the same
rows. Python only renders names, passes the mode and records the run.

Steps several datamarts share live in a folder whose name starts with `_` (no
datamart of its own); a datamart folder names the ones it uses in a `SHARED` file,
one per line, and their steps run in `NN` order among its own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from dwh.analytics.shares import ParallelPlan, read_plan, run_shared, share_count
from dwh.analytics.steps import (
    Logger,
    TransformError,
    dwh_parts,
    dwh_schema,
    record_failure,
    run_steps,
    step_files,
)
from dwh.core.catalog import Catalog
from dwh.core.names import lock_key
from dwh.core.settings import DatamartSettings
from dwh.core.sqlfiles import read_sql
from dwh.core.transient import is_transient

log = logging.getLogger(__name__)

MARTS_DIR = "marts"
SHARED_FILE = "SHARED"

_XACT_LOCK = "SELECT pg_advisory_xact_lock(hashtext(%s))"
_RUN_PARAMS = sql.SQL("CREATE TEMP TABLE dm_run ON COMMIT DROP AS SELECT {}::boolean AS full_rebuild")
_COUNTS = sql.SQL("SELECT (SELECT count(*) FROM dm_targets), (SELECT count(*) FROM {})")
_RECORD = sql.SQL(
    "INSERT INTO {}.datamart_runs "
    "(datamart, status, full_rebuild, flow_run_id, started_at, rows_refreshed, error_message) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s)"
)


@dataclass(frozen=True)
class DatamartResult:
    pipeline: str
    datamart: str
    full_rebuild: bool
    rows_refreshed: int  # entities recomputed (marked ones, or all)
    rows_total: int  # rows in the datamart afterwards
    seconds: float

    def describe(self) -> str:
        mode = "full rebuild" if self.full_rebuild else "marked entities"
        return (
            f"{self.pipeline} datamart {self.datamart} ({mode}): {self.rows_refreshed:,} refreshed, "
            f"{self.rows_total:,} rows, in {self.seconds:,.1f} s"
        )


def datamart_names(pipeline: str, sql_dir: Path) -> list[str]:
    """The pipeline's datamarts: one folder each under `sql/<pipeline>/marts/`."""
    folder = sql_dir / pipeline / MARTS_DIR
    names = (
        sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("_"))
        if folder.is_dir()
        else []
    )
    if not names:
        msg = f"pipeline {pipeline!r} has no datamarts: no folders in {folder}"
        raise FileNotFoundError(msg)
    return names


def datamart_steps(pipeline: str, sql_dir: Path, datamart: str) -> list[Path]:
    """A datamart's steps in order: its folder's, and those of the shared folders its `SHARED` names.

    Raises:
        FileNotFoundError: a named shared folder has no steps.
        ValueError: two steps share a name (which one runs would be a guess).
    """
    marts = sql_dir / pipeline / MARTS_DIR
    folder = marts / datamart
    files = step_files(folder)
    listing = folder / SHARED_FILE
    shared = listing.read_text(encoding="utf-8").split() if listing.is_file() else []
    for name in shared:
        files += step_files(marts / name)
    names = [path.name for path in files]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        msg = f"{pipeline} datamart {datamart}: {clashes} in {folder} and in a folder {listing} lists"
        raise ValueError(msg)
    return sorted(files, key=lambda path: path.name)


def refresh_datamart(
    catalog: Catalog,
    conninfo: str,
    sql_dir: Path,
    datamart: str,
    *,
    full_rebuild: bool = False,
    flow_run_id: UUID | None = None,
    logger: Logger = log,
    settings: DatamartSettings | None = None,
) -> DatamartResult:
    """Refresh one datamart (the marked entities, or all with `full_rebuild`), atomically.

    A datamart with a `PARALLEL` plan computes its targets on up to `settings.sessions`
    sessions (`dwh.analytics.shares`); the rows are the same, in one transaction.

    Raises:
        TransformError: a step failed (file and line in the message); nothing was
            committed and the failure is recorded in `<pipeline>_control.datamart_runs`.
    """
    files = datamart_steps(catalog.pipeline, sql_dir, datamart)
    for path in files:
        read_sql(path)
    plan = read_plan(sql_dir / catalog.pipeline / MARTS_DIR / datamart, files)
    tuning = settings or DatamartSettings()
    table = sql.Identifier(dwh_schema(catalog), f"datamart_{datamart}")
    started = time.monotonic()
    started_at = datetime.now().astimezone()

    record = _RECORD.format(sql.Identifier(catalog.control_schema))

    def run_row(status: str, refreshed: int | None, error: str | None) -> tuple[Any, ...]:
        return (datamart, status, full_rebuild, flow_run_id, started_at, refreshed, error and error[:4000])

    with psycopg.connect(conninfo) as conn:
        try:
            with conn.transaction():
                conn.execute(_XACT_LOCK, (lock_key(catalog.pipeline, "datamart", datamart),))
                conn.execute(_RUN_PARAMS.format(sql.Literal(full_rebuild)))
                _run(
                    conn,
                    conninfo,
                    files=files,
                    parts=dwh_parts(catalog),
                    plan=plan,
                    settings=tuning,
                    logger=logger,
                )
                row = conn.execute(_COUNTS.format(table)).fetchone()
                refreshed, total = (int(row[0]), int(row[1])) if row else (0, 0)
                conn.execute(record, run_row("succeeded", refreshed, None))
        except (TransformError, psycopg.Error) as exc:
            what = f"refresh of {catalog.pipeline} datamart {datamart}"
            record_failure(conninfo, record, run_row("failed", None, str(exc)), what=what)
            if isinstance(exc, TransformError):
                raise
            msg = f"{catalog.pipeline} datamart {datamart} failed: {exc}"
            raise TransformError(msg, transient=is_transient(exc)) from exc
    result = DatamartResult(
        catalog.pipeline, datamart, full_rebuild, refreshed, total, time.monotonic() - started
    )
    logger.info("%s", result.describe())
    return result


def _run(
    conn: psycopg.Connection[Any],
    conninfo: str,
    *,
    files: list[Path],
    parts: dict[str, sql.Composable],
    plan: ParallelPlan | None,
    settings: DatamartSettings,
    logger: Logger,
) -> None:
    """The steps in order; the plan's range on several sessions when the targets are many."""
    if plan is None or settings.sessions == 1:
        run_steps(conn, files, parts, logger)
        return
    before, shared, after, setup = plan.split(files)
    run_steps(conn, before, parts, logger)
    shares = share_count(conn, plan, settings.sessions, settings.min_share)
    if shares == 1 or not run_shared(
        conn, conninfo, plan, steps=shared, setup=setup, shares=shares, parts=parts, logger=logger
    ):
        run_steps(conn, shared, parts, logger)
    run_steps(conn, after, parts, logger)


def refresh_datamarts(
    catalog: Catalog,
    conninfo: str,
    sql_dir: Path,
    *,
    full_rebuild: bool = False,
    flow_run_id: UUID | None = None,
    logger: Logger = log,
) -> list[DatamartResult]:
    """Refresh every datamart of the pipeline, each in its own transaction."""
    options: dict[str, Any] = {"full_rebuild": full_rebuild, "flow_run_id": flow_run_id, "logger": logger}
    return [
        refresh_datamart(catalog, conninfo, sql_dir, name, **options)
        for name in datamart_names(catalog.pipeline, sql_dir)
    ]
