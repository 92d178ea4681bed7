"""The SQL step runner shared by the transform, the datamarts and the rebuild check.

A step is a `NN_name.sql` file of a folder, rendered with the pipeline's names and run
in the caller's transaction; a failure names the file and line (`TransformError`). A
failed run's row is written on a connection of its own (`record_failure`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dwh.core.catalog import Catalog
from dwh.core.faults import failpoint
from dwh.core.sqlfiles import pipeline_parts, render
from dwh.core.transient import StepError, is_transient

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]
Logger = logging.Logger | logging.LoggerAdapter[Any]

_STEP_GLOB = "[0-9][0-9]_*.sql"


class TransformError(StepError):
    """A transform or datamart step failed; the message names the file and line."""


def dwh_schema(catalog: Catalog) -> str:
    """The pipeline's analytical schema (created by `sql/<pipeline>/bootstrap.sql`)."""
    return catalog.dwh_schema


def dwh_parts(catalog: Catalog) -> dict[str, sql.Composable]:
    """Placeholders of the transform and datamart files: the pipeline's names plus `{dwh}`."""
    return {
        **pipeline_parts(catalog),
        "dwh": sql.Identifier(dwh_schema(catalog)),
        "dwh_name": sql.Literal(dwh_schema(catalog)),
    }


def step_files(folder: Path) -> list[Path]:
    """The `NN_name.sql` steps of a folder in order; a folder without any is an error."""
    files = sorted(folder.glob(_STEP_GLOB))
    if not files:
        msg = f"no SQL steps ({_STEP_GLOB}) in {folder}"
        raise FileNotFoundError(msg)
    return files


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float


def _describe_failure(path: Path, sent: str, exc: psycopg.Error) -> str:
    """Name the file and line (rendering replaces names only, so lines match the file)."""
    where = str(path)
    position = exc.diag.statement_position
    if position and position.isdigit():
        where = f"{path}:{sent[: int(position) - 1].count(chr(10)) + 1}"
    message = f"{where}: {type(exc).__name__}: {(exc.diag.message_primary or str(exc)).strip()}"
    if exc.diag.message_detail:
        message += f" ({exc.diag.message_detail.strip()})"
    if exc.diag.context:
        message += f" (context: {exc.diag.context.strip()})"
    return message


def run_steps(conn: Conn, files: list[Path], parts: dict[str, sql.Composable], logger: Logger) -> list[Step]:
    """Execute each file (all its statements) in the current transaction; time every step."""
    steps: list[Step] = []
    for path in files:
        statement = render(path, **parts)
        sent = statement.as_string(conn)  # for the error's line number, even if the connection breaks
        failpoint(f"step:{path.name}")
        started = time.monotonic()
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            message = _describe_failure(path, sent, exc)
            raise TransformError(message, transient=is_transient(exc)) from exc
        steps.append(Step(path.name, time.monotonic() - started))
        logger.debug("%s: %.2f s", path.name, steps[-1].seconds)
    return steps


def record_failure(conninfo: str, statement: sql.Composed, params: tuple[Any, ...], *, what: str) -> None:
    """Write a failed run's row on a connection of its own, best effort.

    The work's transaction has rolled back, and its connection may be the thing that
    broke; a warehouse that is down cannot take the row either, so that only warns.
    """
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(statement, params)
    except psycopg.Error as exc:
        log.warning("could not record the failed %s: %s", what, exc)
