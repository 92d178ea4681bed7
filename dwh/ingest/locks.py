"""Advisory locks on the warehouse that keep two runs off the same table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from dwh.core.sqlfiles import read_sql
from dwh.ingest.engine import Engine


@contextmanager
def table_lock(engine: Engine, table: str) -> Iterator[bool]:
    """Yield True while this process holds the table's lock, False if another does."""
    key = {"key": f"dwh:{engine.catalog.pipeline}:{table}"}
    folder = engine.sql_dir / "engine"
    with psycopg.connect(engine.warehouse_conninfo, autocommit=True) as conn:
        row = conn.execute(read_sql(folder / "try_table_lock.sql"), key).fetchone()
        acquired = bool(row and row[0])
        try:
            yield acquired
        finally:
            if acquired and not conn.closed:
                conn.execute(read_sql(folder / "table_unlock.sql"), key)
