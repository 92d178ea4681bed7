"""Schema drift between source, catalog and bronze (seed §8): the one check for `dwh drift` and extracts.

Bronze columns drive the extract, so what matters is whether every bronze column still
has a source to come from and whether its values arrive unchanged. A difference that
would lose or silently corrupt data is an *error*: `dwh drift` exits 1 and every
extract refuses that table before reading a row, naming the column. A difference the
load itself catches value by value (it fails naming file, line and column), or that
only means a new source column is not extracted yet, is a *warning*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql

from dwh.core.catalog import Catalog, TableSpec
from dwh.core.sqlfiles import read_sql, render

Severity = Literal["error", "warn", "info"]

ENGINE_MANAGED = r"\_dwh\_%"
_GEOMETRY = re.compile(r"^geometry(?:\((?P<type>\w+)(?:,\s*(?P<srid>\d+))?\))?$")
_NUMERIC = re.compile(r"^numeric(?:\((?P<precision>\d+)(?:,(?P<scale>\d+))?\))?$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ZONED = {
    frozenset({"timestamp with time zone", "timestamp without time zone"}),
    frozenset({"time with time zone", "time without time zone"}),
}
# Source type -> bronze types that hold every value of it unchanged.
_WIDENS = {
    "smallint": {"integer", "bigint", "numeric", "double precision", "real"},
    "integer": {"bigint", "numeric", "double precision"},
    "bigint": {"numeric"},
    "real": {"double precision"},
    "date": {"timestamp without time zone"},
}


class DriftError(ValueError):
    """Source, catalog and bronze disagree in a way that loses data; names table and column."""


@dataclass(frozen=True)
class Column:
    """One column as pg_attribute describes it (format_type keeps typmods such as SRIDs)."""

    name: str
    type: str
    not_null: bool

    @property
    def geometry(self) -> tuple[str, int] | None:
        """(geometry type, SRID) of a PostGIS column; SRID 0 means unconstrained."""
        match = _GEOMETRY.match(self.type)
        if match is None:
            return None
        return (match["type"] or "Geometry", int(match["srid"] or 0))


@dataclass(frozen=True)
class Finding:
    """One difference between source, catalog and bronze, and what to do about it."""

    table: str
    column: str
    change: str
    severity: Severity
    detail: str
    fix: str

    @property
    def loses_data(self) -> bool:
        return self.severity == "error"


@dataclass(frozen=True)
class TableDrift:
    """What the extract needs from the check: bronze's data columns and the findings."""

    bronze: list[Column]
    source: list[Column]
    findings: list[Finding]

    def raise_if_lossy(self, catalog: Catalog, table: TableSpec) -> None:
        """Refuse the table, naming every lossy column, so nothing is extracted."""
        lossy = [f for f in self.findings if f.loses_data]
        if lossy:
            where = f"table {catalog.pipeline}.{table.name}"
            raise DriftError("; ".join(f"{where}: {f.detail}" for f in lossy))


def relation_columns(
    conn: psycopg.Connection[Any], sql_dir: Path, relation: str, skip: str = ""
) -> list[Column]:
    """Columns of `schema.table` (quoted) in order; empty when the relation does not exist."""
    query = read_sql(sql_dir / "engine" / "relation_columns.sql")
    rows = conn.execute(query, {"relation": relation, "skip": skip}).fetchall()
    return [Column(str(name), str(type_), bool(not_null)) for name, type_, not_null in rows]


def quoted(schema: str, table: str) -> str:
    """The regclass text of a relation; to_regclass() needs identifiers quoted."""
    return f'"{schema}"."{table}"'


def probe_expressions(
    source: psycopg.Connection[Any], sql_dir: Path, catalog: Catalog, table: TableSpec
) -> dict[str, str]:
    """Bronze column -> PostgreSQL's error for every `columns:` expression that no longer compiles.

    The probe can change nothing: a READ ONLY transaction that is always rolled back, and
    the extended protocol (binary results), which refuses more than one statement.
    """
    errors: dict[str, str] = {}
    relation = sql.Identifier(catalog.source_schema_of(table), table.source_table)
    for column, expression in table.columns.items():
        query = render(
            sql_dir / "engine" / "probe_expression.sql", expression=sql.SQL(expression), source=relation
        )
        try:
            with source.transaction(force_rollback=True), source.cursor() as cur:
                cur.execute("SET TRANSACTION READ ONLY")
                cur.execute(query, binary=True)
        except psycopg.Error as exc:
            errors[column] = (exc.diag.message_primary or str(exc)).strip()
    return errors


def _type_change(source: Column, bronze: Column) -> tuple[Severity, str] | None:  # noqa: PLR0911  (one rule per return)
    """Whether a source type reaches a bronze type intact, and if not how it breaks."""
    if source.type == bronze.type:
        return None
    src_geom, dst_geom = source.geometry, bronze.geometry
    if src_geom and dst_geom:
        if src_geom[1] != dst_geom[1]:
            return "error", (
                f"SRID {src_geom[1]} in the source, {dst_geom[1]} in bronze: coordinates would land "
                "in the wrong reference system or be refused"
            )
        if dst_geom[0] != "Geometry" and src_geom[0] != dst_geom[0]:
            return "warn", f"geometry type {src_geom[0]} in the source, {dst_geom[0]} in bronze"
        return None
    if frozenset({source.type, bronze.type}) in _ZONED:
        return "error", (
            f"{source.type} in the source, {bronze.type} in bronze: "
            "values would shift by the session time zone"
        )
    dst_numeric, src_numeric = _NUMERIC.match(bronze.type), _NUMERIC.match(source.type)
    if dst_numeric and dst_numeric["precision"]:
        dst_scale = int(dst_numeric["scale"] or 0)
        unbounded = source.type in {"double precision", "real"} or (
            src_numeric is not None and src_numeric["precision"] is None
        )
        if unbounded or (src_numeric is not None and int(src_numeric["scale"] or 0) > dst_scale):
            return "error", (
                f"{source.type} in the source, {bronze.type} in bronze: values would be rounded to "
                f"{dst_scale} decimals without an error"
            )
    if (source.type, bronze.type) == ("double precision", "real"):
        return "error", "double precision in the source, real in bronze: digits would be dropped silently"
    if bronze.type in _WIDENS.get(source.type, set()) or bronze.type == "text":
        return "info", f"{source.type} in the source, {bronze.type} in bronze: bronze holds every value"
    return "warn", (
        f"{source.type} in the source, {bronze.type} in bronze: the load parses every value and fails "
        "naming file, line and column if one does not fit"
    )


def _renamed_to(missing: Column, candidates: list[Column]) -> Column | None:
    """The one unused source column of the same type: most likely the bronze column's new name."""
    same = [c for c in candidates if c.type == missing.type]
    return same[0] if len(same) == 1 else None


def _declared_findings(
    catalog: Catalog, table: TableSpec, source: list[Column], bronze: list[Column]
) -> list[Finding]:
    """Catalog fields naming columns that bronze or the source no longer have."""
    bronze_names = {c.name for c in bronze}
    findings = []
    declared = [
        *(("geometry", c) for c in table.geometry),
        *(("columns", c) for c in table.columns),
        *(("key", c) for c in table.key),
    ]
    for field_name, column in declared:
        if column not in bronze_names:
            findings.append(
                Finding(
                    table.name,
                    column,
                    "catalog names a missing column",
                    "error",
                    f"{field_name} names column {column!r}, which bronze does not have",
                    f"fix {field_name}: in {catalog.path or 'the catalog'} or add the column to bronze",
                )
            )
    if table.watermark is not None and table.watermark not in {c.name for c in source}:
        findings.append(
            Finding(
                table.name,
                table.watermark,
                "watermark missing",
                "error",
                f"watermark column {table.watermark!r} is missing in the source",
                "name the source's insertion-time column under watermark: in the catalog",
            )
        )
    return findings


def _column_findings(
    catalog: Catalog,
    table: TableSpec,
    source: list[Column],
    bronze: list[Column],
    expression_errors: dict[str, str],
) -> list[Finding]:
    """Per bronze column: where its values come from and whether they arrive intact."""
    by_name = {c.name: c for c in source}
    referenced = {w for e in table.columns.values() for w in _WORD.findall(e)}
    unused = [c for c in source if c.name not in {b.name for b in bronze} and c.name not in referenced]
    findings: list[Finding] = []
    for column in bronze:
        if column.name in table.columns:
            if column.name in expression_errors:
                findings.append(
                    Finding(
                        table.name,
                        column.name,
                        "expression broken",
                        "error",
                        f"expression for bronze column {column.name!r} ({table.columns[column.name]}) "
                        f"no longer works on the source: {expression_errors[column.name]}",
                        "point the expression under columns: at the renamed source column",
                    )
                )
            continue
        origin = by_name.get(column.name)
        if origin is None:
            guess = _renamed_to(column, unused)
            hint = (
                f" (renamed to {guess.name!r} in the source?)"
                if guess
                else " (renamed or dropped in the source?)"
            )
            findings.append(
                Finding(
                    table.name,
                    column.name,
                    "renamed" if guess else "removed in source",
                    "error",
                    f"bronze column {column.name!r} has no source column of that name and no expression "
                    f"under `columns:` in the catalog{hint}",
                    f"map it under columns: ({column.name}: {guess.name if guess else '<expression>'}) "
                    "or migrate bronze",
                )
            )
            continue
        change = _type_change(origin, column)
        if change is not None:
            severity, detail = change
            findings.append(
                Finding(
                    table.name,
                    column.name,
                    "SRID changed" if "SRID" in detail else "type changed",
                    severity,
                    f"column {column.name!r}: {detail}",
                    "cast it under columns: in the catalog, or migrate bronze" if severity != "info" else "",
                )
            )
        if column.not_null and not origin.not_null:
            findings.append(
                Finding(
                    table.name,
                    column.name,
                    "nullability changed",
                    "warn",
                    f"column {column.name!r} is nullable in the source but NOT NULL in bronze: "
                    "a NULL fails the load naming file and line",
                    "drop NOT NULL in a bronze migration, or coalesce under columns:",
                )
            )
    findings.extend(
        Finding(
            table.name,
            c.name,
            "added in source",
            "warn",
            f"source column {c.name!r} ({c.type}{' NOT NULL' if c.not_null else ''}) is not in bronze: "
            "not extracted until a bronze migration adds it",
            f"dwh migrations generate {catalog.pipeline} && dwh migrate {catalog.pipeline}, or leave it out",
        )
        for c in unused
    )
    return findings


def compare_table(
    catalog: Catalog,
    table: TableSpec,
    source: list[Column],
    bronze: list[Column],
    expression_errors: dict[str, str],
) -> list[Finding]:
    """Every difference for one table (pure: tests and the extract feed it columns)."""
    if not bronze:
        return [
            Finding(
                table.name,
                "*",
                "bronze table missing",
                "error",
                f"bronze table {catalog.bronze_schema}.{table.name} does not exist: "
                f"run `dwh migrate {catalog.pipeline}`",
                f"dwh migrations generate {catalog.pipeline} && dwh migrate {catalog.pipeline}",
            )
        ]
    if not source:
        return [
            Finding(
                table.name,
                "*",
                "source table missing",
                "error",
                f"source table {catalog.source_schema_of(table)}.{table.source_table} does not exist",
                "fix source: in the catalog or the source's search for the table",
            )
        ]
    return [
        *_declared_findings(catalog, table, source, bronze),
        *_column_findings(catalog, table, source, bronze, expression_errors),
    ]


def check_table(
    catalog: Catalog,
    table: TableSpec,
    source: psycopg.Connection[Any],
    warehouse: psycopg.Connection[Any],
    sql_dir: Path,
) -> TableDrift:
    """Read both sides of one table and compare them: what the extract runs first."""
    bronze_cols = relation_columns(
        warehouse, sql_dir, quoted(catalog.bronze_schema, table.name), ENGINE_MANAGED
    )
    source_cols = relation_columns(
        source, sql_dir, quoted(catalog.source_schema_of(table), table.source_table)
    )
    errors = probe_expressions(source, sql_dir, catalog, table) if source_cols and bronze_cols else {}
    return TableDrift(
        bronze_cols, source_cols, compare_table(catalog, table, source_cols, bronze_cols, errors)
    )


def uncatalogued_tables(catalog: Catalog, source: psycopg.Connection[Any], sql_dir: Path) -> list[Finding]:
    """Source tables the catalog does not mention: not drift, but worth a line."""
    schemas = sorted({catalog.source_schema_of(t) for t in catalog.tables} | {catalog.source_schema})
    rows = source.execute(read_sql(sql_dir / "introspect" / "tables.sql"), {"schemas": schemas})
    known = {(catalog.source_schema_of(t), t.source_table) for t in catalog.tables}
    return [
        Finding(
            str(row[1]),
            "*",
            "not in catalog",
            "info",
            f"source table {row[0]}.{row[1]} is not extracted",
            f"dwh init {catalog.pipeline} --from-source proposes an entry for it",
        )
        for row in rows.fetchall()
        if (str(row[0]), str(row[1])) not in known
    ]


def pipeline_drift(
    catalog: Catalog, source: psycopg.Connection[Any], warehouse: psycopg.Connection[Any], sql_dir: Path
) -> list[Finding]:
    """Every table of the catalog, then the source tables it leaves out."""
    findings = [
        f for t in catalog.tables for f in check_table(catalog, t, source, warehouse, sql_dir).findings
    ]
    return findings + uncatalogued_tables(catalog, source, sql_dir)
