"""Hold-back: how far an extract's upper bound sits below the source clock, and who holds it.

The upper bound is lowered below the oldest open source transaction (late commits,
seed §5.2). One session left idle in a transaction therefore stalls every incremental
table at its start while each run still "succeeds" with 0 rows; measuring the distance
and naming the session turns that silent stall into a failed check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from dwh.core.catalog import Catalog
from dwh.core.sqlfiles import engine_sql


@dataclass(frozen=True)
class Holder:
    """The source session whose open transaction set the upper bound."""

    pid: int
    application: str
    state: str | None
    since: datetime

    def describe(self) -> str:
        app = self.application or "no application_name"
        return (
            f"source session pid {self.pid} ({app}; {self.state or 'state unknown'}; "
            f"transaction open since {self.since:%Y-%m-%d %H:%M:%S%z})"
        )


@dataclass(frozen=True)
class SourceBound:
    """An extract's upper bound, the source clock it was read at, and who lowered it."""

    upper: datetime
    now: datetime
    holder: Holder | None

    @property
    def holdback_seconds(self) -> float:
        return max((self.now - self.upper).total_seconds(), 0.0)


@dataclass(frozen=True)
class Holdback:
    table: str
    seconds: float
    holder: Holder | None

    def over(self, limit_minutes: float) -> bool:
        return self.seconds > limit_minutes * 60

    def describe(self) -> str:
        by = f" held by {self.holder.describe()}" if self.holder else ""
        return f"{self.table}: upper bound {self.seconds / 60:,.1f} min behind the source clock{by}"


def latest_holdbacks(conn: psycopg.Connection[Any], catalog: Catalog, sql_dir: Path) -> dict[str, Holdback]:
    """The hold-back of each incremental table's latest extract."""
    tables = [t.name for t in catalog.tables if t.mode.incremental]
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(engine_sql(sql_dir, "holdback_latest", catalog), {"tables": tables})
        rows = cur.fetchall()
    found = {}
    for row in rows:
        holder = None
        if row["holder_pid"] is not None:
            app = row["holder_application"] or ""
            holder = Holder(row["holder_pid"], app, row["holder_state"], row["holder_since"])
        found[row["table_name"]] = Holdback(row["table_name"], float(row["holdback_seconds"]), holder)
    return found
