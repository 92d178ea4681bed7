"""SQL files are read once and read again when they change (dwh/core/sqlfiles.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from dwh.core.sqlfiles import read_sql, render


def test_an_edited_sql_file_is_read_again_and_an_unchanged_one_is_served_from_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "probe.sql"
    path.write_text("SELECT 1", encoding="utf-8")
    assert read_sql(path) == "SELECT 1"

    # A longer text: the size differs.
    path.write_text("SELECT 22", encoding="utf-8")
    assert read_sql(path) == "SELECT 22"

    # The same size, a later modification time: an edit in a dev loop.
    path.write_text("SELECT 33", encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert read_sql(path) == "SELECT 33"

    # Unchanged on disk: served without opening the file again.
    reads: list[Path] = []
    real_read_text = Path.read_text

    def counting_read_text(self: Path, *args: Any, **kwargs: Any) -> str:
        reads.append(self)
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting_read_text)
    assert [read_sql(path) for _ in range(3)] == ["SELECT 33"] * 3
    assert reads == []


def test_a_missing_file_and_an_unfilled_placeholder_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "gone.sql"
    with pytest.raises(FileNotFoundError, match=r"SQL file not found: .*gone\.sql"):
        read_sql(missing)
    template = tmp_path / "template.sql"
    template.write_text("SELECT * FROM {bronze}.{table}", encoding="utf-8")
    with pytest.raises(ValueError, match=r"template\.sql: cannot fill template placeholder 'table'"):
        render(template, bronze=sql.Identifier("b"))
