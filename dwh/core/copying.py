"""Rows from one PostgreSQL session to another by COPY, block by block.

Both ends are server-side COPY, so rows never become Python objects and memory stays
at one block whatever the row count (the reconcile's source keys, a datamart share's
tables).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql


def pipe_copy(
    source: psycopg.Connection[Any],
    copy_out: sql.SQL | sql.Composed,
    target: psycopg.Connection[Any],
    copy_in: sql.SQL | sql.Composed,
) -> None:
    """Run `copy_out` (COPY ... TO STDOUT) on `source` into `copy_in` (COPY ... FROM STDIN) on `target`."""
    with source.cursor().copy(copy_out) as reader, target.cursor().copy(copy_in) as writer:
        for block in reader:
            writer.write(block)
