"""Load `.sql` files and compose them with identifiers and literals via psycopg.sql.

SQL stays in files that reviewers can read and sqlfluff can format; Python only fills
in `{name}` placeholders with `sql.Identifier`/`sql.Literal`, never by string
formatting, so a table or role name can never inject SQL. A literal brace in a file
is written `{{` / `}}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from psycopg import sql

if TYPE_CHECKING:
    from dwh.core.catalog import Catalog, TableSpec


# path -> (mtime_ns, size, text). A quiet table's chain renders a dozen statements and
# reading their files was 6% of it; the stat keeps an edited file (a dev loop, a test
# writing its own SQL) from being served stale. Unbounded: a pipeline has tens of files.
_READ: dict[Path, tuple[int, int, str]] = {}


def read_sql(path: Path) -> str:
    """A SQL file's text, read again only when its modification time or size changed."""
    try:
        stat = path.stat()
        cached = _READ.get(path)
        if cached is not None and cached[:2] == (stat.st_mtime_ns, stat.st_size):
            return cached[2]
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"SQL file not found: {path}"
        raise FileNotFoundError(msg) from None
    _READ[path] = (stat.st_mtime_ns, stat.st_size, text)
    return text


def render(path: Path, **parts: sql.Composable) -> sql.Composed:
    """Compose a SQL template file; a placeholder without a value names the file."""
    try:
        return sql.SQL(read_sql(path)).format(**parts)
    except (KeyError, ValueError, IndexError) as exc:
        msg = f"{path}: cannot fill template placeholder {exc}"
        raise ValueError(msg) from exc


def pipeline_parts(catalog: Catalog) -> dict[str, sql.Composable]:
    """The names every per-pipeline template may use, derived from the pipeline's name."""
    return {
        "bronze": sql.Identifier(catalog.bronze_schema),
        "control": sql.Identifier(catalog.control_schema),
        "ledger": sql.Identifier(catalog.ledger_schema),
        "owner": sql.Identifier(catalog.owner_role),
        "ro": sql.Identifier(catalog.ro_role),
        "bronze_name": sql.Literal(catalog.bronze_schema),
        "control_name": sql.Literal(catalog.control_schema),
        "ledger_name": sql.Literal(catalog.ledger_schema),
        "owner_name": sql.Literal(catalog.owner_role),
        "ro_name": sql.Literal(catalog.ro_role),
        "pipeline": sql.Literal(catalog.pipeline),
    }


def engine_sql(sql_dir: Path, name: str, catalog: Catalog, **parts: sql.Composable) -> sql.Composed:
    """A statement of `sql/engine/`, with the pipeline's names (and any `parts`) filled in."""
    return render(sql_dir / "engine" / f"{name}.sql", **pipeline_parts(catalog), **parts)


def window_parts(catalog: Catalog, table: TableSpec) -> dict[str, sql.Composable]:
    """`{source}` and `{watermark}` of an incremental table's window statements."""
    if table.watermark is None:
        msg = f"table {catalog.pipeline}.{table.name}: a window needs a watermark"
        raise ValueError(msg)
    return {
        "source": sql.Identifier(catalog.source_schema_of(table), table.source_table),
        "watermark": sql.Identifier(table.watermark),
    }
