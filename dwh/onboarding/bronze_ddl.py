"""`dwh migrations generate`: bronze DDL from the catalog and the source's types, as a numbered migration.

Hand-written bronze DDL drifts from the catalog (a key without its PRIMARY KEY, a
geometry without its SRID); generated DDL cannot. The file is a template like every
migration (`{bronze}` stays a placeholder the migrator fills), so the roles, schemas,
grants and audits still come from the one shared set under `sql/common/`. Tables
bronze lacks are created; columns the source gained are added; nothing is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dwh.core.catalog import Catalog, TableSpec
from dwh.core.migrate import discover
from dwh.core.sqlfiles import read_sql, render
from dwh.ingest.drift import ENGINE_MANAGED, Column, quoted, relation_columns

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOADED_AT = sql.SQL("    _dwh_loaded_at timestamptz NOT NULL DEFAULT now()")
# Set by the delete reconciliation on tables whose catalog entry opts in.
_DELETED_AT = sql.SQL("    _dwh_deleted_at timestamptz")


class GenerateError(RuntimeError):
    """The DDL cannot be generated; the message names the table, column or file."""


@dataclass(frozen=True)
class GeneratedMigration:
    path: Path
    created: list[str]
    added: list[str]


def _generate_sql(sql_dir: Path, name: str, **parts: sql.Composable) -> sql.Composed:
    return render(sql_dir / "generate" / f"{name}.sql", **parts)


def _expression_type(
    source: psycopg.Connection[Any], sql_dir: Path, relation: sql.Composable, expression: str
) -> str:
    """The type a `columns:` expression yields, asked of the source itself (no rows read)."""
    probe = render(
        sql_dir / "engine" / "probe_expression.sql", expression=sql.SQL(expression), source=relation
    )
    cur = source.execute(probe)
    assert cur.description is not None  # noqa: S101  (a SELECT always describes its columns)
    row = source.execute(
        read_sql(sql_dir / "introspect" / "type_name.sql"), {"oid": cur.description[0].type_code}
    ).fetchone()
    return str(row[0]) if row else "text"


def planned_columns(
    catalog: Catalog, table: TableSpec, source: psycopg.Connection[Any], sql_dir: Path
) -> list[Column]:
    """Bronze's data columns: the source's, with `columns:` expressions in place of what they read."""
    schema = catalog.source_schema_of(table)
    columns = relation_columns(source, sql_dir, quoted(schema, table.source_table))
    if not columns:
        where = f"table {catalog.pipeline}.{table.name}"
        msg = f"{where}: source table {schema}.{table.source_table} does not exist"
        raise GenerateError(msg)
    relation = sql.Identifier(schema, table.source_table)
    replaced: dict[str, str] = {}
    for name, expression in table.columns.items():
        reads = [w for w in _WORD.findall(expression) if w in {c.name for c in columns}]
        replaced[reads[0] if reads else name] = name
        for other in reads[1:]:
            replaced.setdefault(other, "")
    planned: list[Column] = []
    for column in columns:
        target = replaced.get(column.name, column.name)
        if target and target in table.columns:
            try:
                kind = _expression_type(source, sql_dir, relation, table.columns[target])
            except psycopg.Error as exc:
                msg = f"table {catalog.pipeline}.{table.name}: expression for column {target!r}: {exc}"
                raise GenerateError(msg) from exc
            planned.append(Column(target, kind, not_null=False))
        elif target:
            planned.append(column)
    missing = [n for n in table.columns if n not in {c.name for c in planned}]
    for name in missing:
        kind = _expression_type(source, sql_dir, relation, table.columns[name])
        planned.append(Column(name, kind, not_null=False))
    return planned


def _definition(column: Column, key: tuple[str, ...]) -> sql.Composable:
    not_null = column.not_null or column.name in key
    return sql.SQL("    {} {}{}").format(
        sql.Identifier(column.name), sql.SQL(column.type), sql.SQL(" NOT NULL" if not_null else "")
    )


def create_table(sql_dir: Path, table: TableSpec, columns: list[Column]) -> sql.Composed:
    """CREATE TABLE with the natural key as PRIMARY KEY and the engine's `_dwh_` columns."""
    lines = [_definition(c, table.key) for c in columns] + [_LOADED_AT]
    if table.reconcile_deletes:
        lines.append(_DELETED_AT)
    if table.key:
        lines.append(
            sql.SQL("    PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, table.key)))
        )
    return _generate_sql(
        sql_dir, "bronze_table", table=sql.Identifier(table.name), columns=sql.SQL(",\n").join(lines)
    )


def _unapplied(catalog: Catalog, warehouse: psycopg.Connection[Any], sql_dir: Path) -> list[str]:
    """The pipeline's migration files the warehouse has not applied: bronze lacks their tables yet."""
    exists = warehouse.execute(
        read_sql(sql_dir / "introspect" / "relation_exists.sql"),
        {"relation": quoted(catalog.control_schema, "schema_migrations")},
    ).fetchone()
    applied: set[str] = set()
    if exists and exists[0]:
        query = render(
            sql_dir / "introspect" / "applied_versions.sql", control=sql.Identifier(catalog.control_schema)
        )
        applied = {str(r[0]) for r in warehouse.execute(query).fetchall()}
    own = sql_dir / catalog.pipeline / "migrations"
    return [
        m.path.name for m in discover(catalog, sql_dir) if m.version not in applied and m.path.parent == own
    ]


def next_migration_path(catalog: Catalog, sql_dir: Path) -> Path:
    """The pipeline's next hundred: 0100 first, then 0200, … (common migrations use 00NN)."""
    versions = [int(m.version) for m in discover(catalog, sql_dir)]
    number = (max([0, *versions]) // 100 + 1) * 100
    name = "bronze" if number == 100 else "bronze_changes"  # noqa: PLR2004
    return sql_dir / catalog.pipeline / "migrations" / f"{number:04d}_{name}.sql"


def generate_bronze_migration(
    catalog: Catalog,
    source: psycopg.Connection[Any],
    warehouse: psycopg.Connection[Any],
    sql_dir: Path,
) -> GeneratedMigration | None:
    """Write the next numbered migration with what bronze lacks; None when it lacks nothing."""
    pending = _unapplied(catalog, warehouse, sql_dir)
    if pending:
        msg = (
            f"{sql_dir / catalog.pipeline / 'migrations'}: {', '.join(pending)} not applied yet: run "
            f"`dwh migrate {catalog.pipeline}` first, so the new migration builds on them"
        )
        raise GenerateError(msg)
    statements: list[sql.Composable] = []
    created: list[str] = []
    added: list[str] = []
    for table in catalog.tables:
        columns = planned_columns(catalog, table, source, sql_dir)
        relation = quoted(catalog.bronze_schema, table.name)
        existing = {c.name for c in relation_columns(warehouse, sql_dir, relation, ENGINE_MANAGED)}
        if not existing:
            statements.append(create_table(sql_dir, table, columns))
            created.append(table.name)
            continue
        for column in (c for c in columns if c.name not in existing):
            statements.append(
                _generate_sql(
                    sql_dir,
                    "bronze_add_column",
                    table=sql.Identifier(table.name),
                    column=sql.Identifier(column.name),
                    type=sql.SQL(column.type),
                )
            )
            added.append(f"{table.name}.{column.name}")
    if not statements:
        return None
    header = _generate_sql(sql_dir, "header", pipeline=sql.SQL(catalog.pipeline))
    text = sql.SQL("\n").join([header, *statements]).as_string(warehouse)
    path = next_migration_path(catalog, sql_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return GeneratedMigration(path, created, added)
