"""The control schema as functions: watermarks and the run log (seed §4, §7).

Every statement lives in `sql/engine/`; these functions only bind the pipeline's
schema names and the values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from dwh.core.catalog import Catalog
from dwh.core.sqlfiles import engine_sql

if TYPE_CHECKING:
    from dwh.ingest.holdback import SourceBound

RESEED_FROM = datetime.fromisoformat("2000-01-01T00:00:00+00:00")

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class RunRow:
    """One row of extract_runs, as recovery and load need it."""

    run_id: int
    table_name: str
    mode: str
    status: str
    upper_bound: datetime | None
    rows_extracted: int | None
    parts: int | None
    extracted_at: datetime | None
    repair: bool = False  # load overwrites rows bronze already has (`dwh run --repair`)

    @property
    def extract_finished(self) -> bool:
        """All parts were published; the run can be loaded."""
        return self.extracted_at is not None


class RunLog:
    """Control-table operations of one pipeline against one warehouse connection."""

    def __init__(self, conn: Conn, catalog: Catalog, sql_dir: Path) -> None:
        self.conn = conn
        self.catalog = catalog
        self.sql_dir = sql_dir

    def _q(self, name: str, **parts: sql.Composable) -> sql.Composed:
        return engine_sql(self.sql_dir, name, self.catalog, **parts)

    def watermark(self, table: str) -> datetime:
        row = self.conn.execute(self._q("read_watermark"), {"table": table}).fetchone()
        if row is None:
            msg = (
                f"{self.catalog.control_schema}.extract_watermarks has no row for table "
                f"{table!r}: run `dwh migrate {self.catalog.pipeline}`"
            )
            raise LookupError(msg)
        value: datetime = row[0]
        return value

    def rewind(self, table: str, to: datetime) -> None:
        """Move a watermark back for a backfill or reseed; moving it forward is refused."""
        with self.conn.transaction():
            done = self.conn.execute(self._q("rewind_watermark"), {"table": table, "to": to})
            if done.fetchone() is None:
                current = self.watermark(table)
                msg = (
                    f"cannot backfill {self.catalog.pipeline}.{table} from {to.isoformat()}: "
                    f"it is after the current watermark {current.isoformat()} and would "
                    "skip rows"
                )
                raise ValueError(msg)

    def start(
        self,
        table: str,
        mode: str,
        lower: datetime | None,
        upper: datetime | None,
        flow_run_id: UUID | None,
        *,
        bound: SourceBound | None = None,
        repair: bool = False,
    ) -> int:
        """Record a new run; `bound` records its hold-back and the session that set it."""
        holder = bound.holder if bound else None
        with self.conn.transaction():
            row = self.conn.execute(
                self._q("insert_run"),
                {
                    "table": table,
                    "mode": mode,
                    "flow_run_id": flow_run_id,
                    "lower": lower,
                    "upper": upper,
                    "source_now": bound.now if bound else None,
                    "holdback_seconds": bound.holdback_seconds if bound else None,
                    "holder_pid": holder.pid if holder else None,
                    "holder_application": holder.application if holder else None,
                    "holder_state": holder.state if holder else None,
                    "holder_since": holder.since if holder else None,
                    "repair": repair,
                },
            ).fetchone()
        assert row is not None  # noqa: S101  (RETURNING always yields the row)
        return int(row[0])

    def uploaded(self, run_id: int, *, rows: int, size: int, parts: int, csv_path: str) -> None:
        with self.conn.transaction():
            self.conn.execute(
                self._q("mark_uploaded"),
                {"run_id": run_id, "rows": rows, "bytes": size, "parts": parts, "csv_path": csv_path},
            )

    def failed(self, run_id: int, error: str) -> None:
        """Record a failure in its own transaction (the work's transaction rolled back)."""
        with self.conn.transaction():
            self.conn.execute(self._q("mark_failed"), {"run_id": run_id, "error": error[:4000]})

    def loaded(
        self, run_id: int, *, rows_loaded: int, rows_skipped: int, due_at: datetime | None = None
    ) -> None:
        """Mark loaded and advance the watermark; call inside the load transaction.

        `due_at`: when the table's next load is due by the schedule (v_table_due, Grafana).
        """
        self.conn.execute(
            self._q("mark_loaded"),
            {"run_id": run_id, "rows_loaded": rows_loaded, "rows_skipped": rows_skipped, "due_at": due_at},
        )

    def runs(self, table: str, run_ids: list[int]) -> list[RunRow]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._q("get_runs"), {"table": table, "run_ids": run_ids})
            return [RunRow(**row) for row in cur.fetchall()]
