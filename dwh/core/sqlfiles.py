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


def read_sql(path: Path) -> str:
    """Read a SQL file once per process (they do not change while we run)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"SQL file not found: {path}"
        raise FileNotFoundError(msg) from None


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
