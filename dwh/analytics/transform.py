"""Star-schema ETL of a pipeline: the set-based steps of `sql/<pipeline>/transform/` in one transaction.

Each step is a SQL file (dbt-style: import CTEs, logic CTEs, final select) run in name
order inside one transaction, so a run commits its facts, dimensions, datamart marks
and its own watermark together or not at all. The files hand work to each other
through temp tables (`etl_batch`, `etl_notes`, `etl_facts`, ...) that die with the
transaction; Python only renders names, times the steps and reads the statistics.

The watermark is `_dwh_loaded_at` (when a row reached the warehouse), never the OSM
action time: a comment back-filled with an old timestamp arrives with a new load time
and is processed. The first run (facts empty) builds everything.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from dwh.analytics.steps import (
    Logger,
    Step,
    TransformError,
    dwh_parts,
    dwh_schema,
    record_failure,
    run_steps,
    step_files,
)
from dwh.core.catalog import Catalog
from dwh.core.names import lock_key
from dwh.core.sqlfiles import read_sql, render
from dwh.core.transient import is_transient

log = logging.getLogger(__name__)


TRANSFORM_DIR = "transform"
# Read after the steps, in the same transaction, from the pipeline's transform folder.
RESULT_FILE = "result.sql"
INVALID_EXAMPLES_FILE = "invalid_examples.sql"

_RUN_PARAMS = sql.SQL("CREATE TEMP TABLE etl_run ON COMMIT DROP AS SELECT {}::uuid AS flow_run_id")
_REBUILD = sql.SQL("TRUNCATE {facts}, {bridge}, {notes}")
_XACT_LOCK = "SELECT pg_advisory_xact_lock(hashtext(%s))"
_RECORD_FAILURE = sql.SQL(
    "INSERT INTO {}.transform_runs (status, flow_run_id, started_at, error_message) "
    "VALUES ('failed', %s, %s, %s)"
)


@dataclass(frozen=True)
class InvalidTransition:
    """An action the note's state did not allow (stored as a fact, flagged)."""

    note_id: int
    sequence: int
    action: str
    status_before: str

    def describe(self) -> str:
        return f"note {self.note_id} #{self.sequence}: {self.action} while {self.status_before}"


@dataclass(frozen=True)
class TransformResult:
    pipeline: str
    first_run: bool
    lower_bound: datetime | None  # None: from the beginning
    upper_bound: datetime
    comments_in_window: int
    notes_touched: int
    comments_waiting: int
    facts_inserted: int
    facts_updated: int
    invalid_transitions: int
    status_mismatches: int
    seconds: float
    held_back_seconds: float = 0.0  # how far the window stops before the run's start
    facts_deleted: int = 0  # facts of comments and notes deleted in the source
    steps: tuple[Step, ...] = field(default_factory=tuple)
    invalid_examples: tuple[InvalidTransition, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        kind = "first build" if self.first_run else "incremental"
        rate = self.comments_in_window / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.pipeline} transform ({kind}): {self.comments_in_window:,} new comments, "
            f"{self.notes_touched:,} notes touched, {self.facts_inserted:,} facts inserted, "
            f"{self.facts_updated:,} updated, {self.facts_deleted:,} deleted, "
            f"{self.invalid_transitions:,} invalid transitions, "
            f"{self.comments_waiting:,} comments waiting for their note, in {self.seconds:,.1f} s "
            f"({rate:,.0f} comments/s)"
        )


def run_transform(
    catalog: Catalog,
    conninfo: str,
    sql_dir: Path,
    *,
    rebuild: bool = False,
    flow_run_id: UUID | None = None,
    logger: Logger = log,
) -> TransformResult:
    """Bring the star schema up to date with bronze; returns what the run did.

    One transform at a time per pipeline (a second waits for the first, then sees the
    window the first left). `rebuild=True` empties facts, bridge and dim_notes first,
    in the same transaction, so the run is a first build again (dimensions, with their
    SCD2 history, are kept).

    Raises:
        TransformError: a step failed (file and line in the message); nothing was
            committed and a failed run is recorded in `<pipeline>_control.transform_runs`.
    """
    folder = sql_dir / catalog.pipeline / TRANSFORM_DIR
    files = step_files(folder)
    for path in [*files, folder / RESULT_FILE, folder / INVALID_EXAMPLES_FILE]:
        read_sql(path)  # a missing or unreadable file fails before any work
    parts = dwh_parts(catalog)
    dwh = dwh_schema(catalog)
    started = time.monotonic()
    started_at = datetime.now().astimezone()
    with psycopg.connect(conninfo) as conn:
        try:
            with conn.transaction():
                conn.execute(_XACT_LOCK, (lock_key(catalog.pipeline, "step", "transform"),))
                conn.execute(_RUN_PARAMS.format(sql.Literal(flow_run_id)))
                if rebuild:
                    conn.execute(
                        _REBUILD.format(
                            facts=sql.Identifier(dwh, "facts"),
                            bridge=sql.Identifier(dwh, "fact_hashtags"),
                            notes=sql.Identifier(dwh, "dim_notes"),
                        )
                    )
                steps = run_steps(conn, files, parts, logger)
                with conn.cursor(row_factory=dict_row) as cur:
                    summary = cur.execute(render(folder / RESULT_FILE, **parts)).fetchone()
                    examples = cur.execute(render(folder / INVALID_EXAMPLES_FILE, **parts)).fetchall()
        except (TransformError, psycopg.Error) as exc:
            record_failure(
                conninfo,
                _RECORD_FAILURE.format(sql.Identifier(catalog.control_schema)),
                (flow_run_id, started_at, str(exc)[:4000]),
                what=f"transform of {catalog.pipeline}",
            )
            if isinstance(exc, TransformError):
                raise
            msg = f"{catalog.pipeline} transform failed: {exc}"
            raise TransformError(msg, transient=is_transient(exc)) from exc
    assert summary is not None  # noqa: S101  (etl_batch always holds one row)
    stats: dict[str, int] = summary["stats"]
    result = TransformResult(
        pipeline=catalog.pipeline,
        first_run=summary["first_run"],
        lower_bound=summary["lower_bound"],
        upper_bound=summary["upper_bound"],
        comments_in_window=stats.get("comments_in_window", 0),
        notes_touched=stats.get("notes_touched", 0),
        comments_waiting=stats.get("comments_waiting", 0),
        facts_inserted=stats.get("facts_inserted", 0),
        facts_updated=stats.get("facts_updated", 0),
        facts_deleted=stats.get("facts_deleted", 0),
        invalid_transitions=stats.get("invalid_transitions", 0),
        status_mismatches=stats.get("status_mismatches", 0),
        seconds=time.monotonic() - started,
        held_back_seconds=summary["held_back_seconds"],
        steps=tuple(steps),
        invalid_examples=tuple(InvalidTransition(**row) for row in examples),
    )
    _log_result(result, logger)
    return result


HELD_BACK_WARNING_SECONDS = 600


def _log_result(result: TransformResult, logger: Logger) -> None:
    logger.info("%s", result.describe())
    if result.held_back_seconds > HELD_BACK_WARNING_SECONDS:
        logger.warning(
            "%s: the window stops %.0f s before now, at %s: a transaction of the pipeline's role "
            "has been open since then, and rows it loads must wait for it (see pg_stat_activity)",
            result.pipeline,
            result.held_back_seconds,
            result.upper_bound.isoformat(),
        )
    if result.invalid_transitions:
        logger.warning(
            "%s: %s invalid state transition(s) in the source, kept as facts and flagged "
            "(is_valid_transition = false), e.g. %s",
            result.pipeline,
            result.invalid_transitions,
            "; ".join(t.describe() for t in result.invalid_examples),
        )
    if result.comments_waiting:
        logger.warning(
            "%s: %s comment(s) wait for their note row, which is not in bronze yet",
            result.pipeline,
            result.comments_waiting,
        )
    if result.status_mismatches:
        logger.warning(
            "%s: %s note(s) whose source status differs from the one their actions give",
            result.pipeline,
            result.status_mismatches,
        )
