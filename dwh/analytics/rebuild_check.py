"""Incremental == rebuild: keep what the incremental runs built, compare it with a rebuild's.

The nightly rebuild (`osm_notes_etl(rebuild=True)`) first brings facts and datamarts up
to date incrementally, keeps one hash per entity (`sql/<pipeline>/check/snapshot.sql`),
rebuilds everything from bronze, then lists the entities whose state differs
(`differences.sql`). The rebuild's rows stay (they are the truth); a difference means
the incremental path has a bug, and the run fails naming the entities.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg

from dwh.analytics.steps import Logger, TransformError, dwh_parts, run_steps
from dwh.core.catalog import Catalog
from dwh.core.sqlfiles import read_sql, render
from dwh.core.transient import is_transient

log = logging.getLogger(__name__)

CHECK_DIR = "check"
STATE_FILE = "state.sql"
SNAPSHOT_FILE = "snapshot.sql"
DIFFERENCES_FILE = "differences.sql"


@dataclass(frozen=True)
class StateDifference:
    """Entities of one kind (note, user, country, global) whose rebuilt state differs."""

    kind: str
    entities: int
    examples: tuple[int, ...]

    def describe(self) -> str:
        shown = ", ".join(str(e) for e in self.examples)
        rest = self.entities - len(self.examples)
        more = f" and {rest:,} more" if rest > 0 else ""
        return f"{self.entities:,} {self.kind}(s): {shown}{more}"


class RebuildMismatchError(Exception):
    """The incremental state differed from the rebuild's; the message names the entities."""

    def __init__(self, pipeline: str, differences: list[StateDifference]) -> None:
        self.pipeline = pipeline
        self.differences = differences
        listed = "; ".join(d.describe() for d in differences)
        super().__init__(
            f"{pipeline}: the incremental facts and datamarts differ from a rebuild from bronze for {listed} "
            "(the rebuilt rows are kept; the incremental path has a bug for these entities)"
        )


def _folder(catalog: Catalog, sql_dir: Path) -> Path:
    return sql_dir / catalog.pipeline / CHECK_DIR


def snapshot_state(catalog: Catalog, conninfo: str, sql_dir: Path, *, logger: Logger = log) -> None:
    """Keep the current (incremental) state's hashes for `state_differences`."""
    folder = _folder(catalog, sql_dir)
    files = [folder / STATE_FILE, folder / SNAPSHOT_FILE]
    for path in files:
        read_sql(path)
    try:
        with psycopg.connect(conninfo) as conn, conn.transaction():
            run_steps(conn, files, dwh_parts(catalog), logger)
    except psycopg.Error as exc:
        msg = f"{catalog.pipeline} rebuild check snapshot failed: {exc}"
        raise TransformError(msg, transient=is_transient(exc)) from exc


def state_differences(
    catalog: Catalog, conninfo: str, sql_dir: Path, *, logger: Logger = log
) -> list[StateDifference]:
    """The entities whose state now differs from the one `snapshot_state` kept."""
    folder = _folder(catalog, sql_dir)
    parts = dwh_parts(catalog)
    try:
        with psycopg.connect(conninfo) as conn, conn.transaction():
            run_steps(conn, [folder / STATE_FILE], parts, logger)
            found = conn.execute(render(folder / DIFFERENCES_FILE, **parts)).fetchall()
    except psycopg.Error as exc:
        msg = f"{catalog.pipeline} rebuild check failed: {exc}"
        raise TransformError(msg, transient=is_transient(exc)) from exc
    return [StateDifference(kind, int(n), tuple(int(e) for e in examples)) for kind, n, examples in found]
