"""The per-table outcome of an ingest run and its markdown summary (the run artifact)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["loaded", "skipped", "failed"]


@dataclass(frozen=True)
class TableOutcome:
    table: str
    mode: str
    status: Status
    rows_extracted: int = 0
    rows_loaded: int = 0
    rows_skipped: int = 0
    seconds: float = 0.0
    files: tuple[str, ...] = field(default_factory=tuple)
    error: str | None = None
    # Set when the extract's upper bound sat further below the source clock than
    # DWH_MAX_HOLDBACK_MINUTES: the table loads, but is stalled behind that session.
    held_back: str | None = None
    # Bronze rows marked deleted by the delete reconciliation (catalog `reconcile_deletes`).
    rows_deleted: int = 0


@dataclass(frozen=True)
class IngestSummary:
    pipeline: str
    tables: tuple[TableOutcome, ...]

    @property
    def failed(self) -> list[TableOutcome]:
        return [t for t in self.tables if t.status == "failed"]

    @property
    def held_back(self) -> list[TableOutcome]:
        return [t for t in self.tables if t.held_back]


class IngestFailedError(RuntimeError):
    """Some tables failed; carries the whole summary so callers can still show it."""

    def __init__(self, summary: IngestSummary) -> None:
        names = ", ".join(f"{t.table} ({t.error})" for t in summary.failed)
        super().__init__(f"{len(summary.failed)} of {len(summary.tables)} tables failed: {names}")
        self.summary = summary


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary_markdown(summary: IngestSummary) -> str:
    lines = [
        f"# ingest {summary.pipeline}",
        "",
        "| table | mode | status | extracted | loaded | skipped | seconds | files | error |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    for t in summary.tables:
        files = "<br>".join(f.rsplit("/", 1)[-1] for f in t.files) or "-"
        lines.append(
            f"| {t.table} | {t.mode} | {t.status} | {t.rows_extracted:,} | {t.rows_loaded:,} "
            f"| {t.rows_skipped:,} | {t.seconds:,.1f} | {files} | {_cell(t.error or '')} |"
        )
    if summary.held_back:
        lines += ["", "## Held back by an open source transaction (past DWH_MAX_HOLDBACK_MINUTES)", ""]
        lines += [f"- **{t.table}**: {t.held_back}" for t in summary.held_back]
        lines += ["", "See docs/runbook.md, 'Tables held back by an open source transaction'."]
    return "\n".join(lines) + "\n"
