"""What a live source database says about its tables, read from its catalogs for `dwh init`.

pg_catalog gives columns, defaults, keys and triggers; PostGIS's geometry_columns gives
geometry types and SRIDs; pg_class and pg_stat_user_tables give sizes and how rows
change. Every query is a file under `sql/introspect/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from dwh.core.sqlfiles import read_sql

# Expressions PostgreSQL prints for defaults that stamp the moment of the write.
_NOW_DEFAULT = re.compile(
    r"^\(?(now\(\)|clock_timestamp\(\)|statement_timestamp\(\)|transaction_timestamp\(\)"
    r"|CURRENT_TIMESTAMP|LOCALTIMESTAMP)",
    re.IGNORECASE,
)
# `NEW.col := now()` (or `=`) in a trigger function body.
_TRIGGER_STAMP = re.compile(
    r"NEW\s*\.\s*\"?(?P<column>\w+)\"?\s*:?=\s*(now\s*\(\s*\)|clock_timestamp\s*\(\s*\)|statement_timestamp"
    r"\s*\(\s*\)|transaction_timestamp\s*\(\s*\)|current_timestamp|localtimestamp)",
    re.IGNORECASE,
)
# geometry_columns spells types in capitals; bronze DDL uses format_type's spelling.
_GEOMETRY_TYPES = {
    name.upper(): name
    for base in (
        "Geometry",
        "Point",
        "LineString",
        "Polygon",
        "MultiPoint",
        "MultiLineString",
        "MultiPolygon",
        "GeometryCollection",
    )
    for name in (base, f"{base}Z", f"{base}M", f"{base}ZM")
}


@dataclass(frozen=True)
class SourceColumn:
    name: str
    type: str
    not_null: bool
    default: str | None
    generated_key: bool
    geometry: tuple[str, int] | None = None

    @property
    def is_timestamp(self) -> bool:
        return self.type.startswith("timestamp")

    @property
    def now_default(self) -> bool:
        return self.default is not None and _NOW_DEFAULT.match(self.default) is not None


@dataclass(frozen=True)
class UniqueKey:
    name: str
    primary: bool
    columns: tuple[str, ...]


@dataclass(frozen=True)
class SourceTable:
    schema: str
    name: str
    row_estimate: int
    inserts: int
    updates: int
    deletes: int
    columns: list[SourceColumn] = field(default_factory=list)
    keys: list[UniqueKey] = field(default_factory=list)
    stamped_on_insert: set[str] = field(default_factory=set)
    stamped_on_update: set[str] = field(default_factory=set)

    def column(self, name: str) -> SourceColumn:
        return next(c for c in self.columns if c.name == name)


def _rows(
    conn: psycopg.Connection[Any], sql_dir: Path, name: str, schemas: list[str]
) -> list[tuple[Any, ...]]:
    return conn.execute(read_sql(sql_dir / "introspect" / f"{name}.sql"), {"schemas": schemas}).fetchall()


def _geometry(
    conn: psycopg.Connection[Any], sql_dir: Path, schemas: list[str]
) -> dict[tuple[str, str, str], tuple[str, int]]:
    """(schema, table, column) -> (type, SRID) from geometry_columns, when PostGIS is there."""
    row = conn.execute(read_sql(sql_dir / "introspect" / "has_postgis.sql")).fetchone()
    if not row or not row[0]:
        return {}
    return {
        (s, t, c): (_GEOMETRY_TYPES.get(str(kind).upper(), str(kind)), int(srid))
        for s, t, c, kind, srid in _rows(conn, sql_dir, "geometry_columns", schemas)
    }


def introspect_source(conn: psycopg.Connection[Any], sql_dir: Path, schemas: list[str]) -> list[SourceTable]:
    """Every table of the schemas, with columns, keys, triggers, size and change counts."""
    tables = {
        (s, t): SourceTable(s, t, int(rows), int(ins), int(upd), int(dels))
        for s, t, rows, ins, upd, dels in _rows(conn, sql_dir, "tables", schemas)
    }
    geometry = _geometry(conn, sql_dir, schemas)
    for s, t, name, type_, not_null, default, generated in _rows(conn, sql_dir, "columns", schemas):
        if (s, t) in tables:
            tables[s, t].columns.append(
                SourceColumn(
                    name, type_, bool(not_null), default, bool(generated), geometry.get((s, t, name))
                )
            )
    for s, t, name, primary, columns in _rows(conn, sql_dir, "unique_keys", schemas):
        if (s, t) in tables:
            tables[s, t].keys.append(UniqueKey(name, bool(primary), tuple(columns)))
    for s, t, _trigger, on_insert, on_update, body in _rows(conn, sql_dir, "trigger_functions", schemas):
        if (s, t) not in tables:
            continue
        stamped = {m["column"] for m in _TRIGGER_STAMP.finditer(body or "")}
        if on_insert:
            tables[s, t].stamped_on_insert.update(stamped)
        if on_update:
            tables[s, t].stamped_on_update.update(stamped)
    return list(tables.values())
