"""Pipelines as data: the catalog YAML that declares every table of a pipeline once.

The engine never hard-codes a table. Everything it needs to extract and load one
(mode, watermark, natural key, geometry columns, extract expressions for drift,
part size) comes from here, validated up front with errors that name the file,
the table and the field.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dwh.core import names
from dwh.core.export_spec import ExportSpec
from dwh.core.names import Ident


class CatalogError(ValueError):
    """A catalog file is missing or invalid; the message names file, table and field."""


class Mode(StrEnum):
    """How a table reaches bronze (seed §6 decision matrix)."""

    SNAPSHOT = "snapshot"  # TRUNCATE + reload inside the load transaction
    APPEND = "append"  # INSERT … ON CONFLICT (key) DO NOTHING
    MERGE = "merge"  # INSERT … ON CONFLICT (key) DO UPDATE of rows that changed

    @property
    def incremental(self) -> bool:
        return self is not Mode.SNAPSHOT


# What may hide a `;` without ending a statement: string literals (with '' and, in E'',
# backslash escapes), dollar quotes, quoted identifiers and comments.
_NOT_CODE = re.compile(
    r"""[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'|(\$[A-Za-z_0-9]*\$).*?\1|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/""",
    re.DOTALL,
)


def expression_problem(expression: str) -> str | None:
    """Why a `columns:` value is not one SQL expression, or None.

    Catalog expressions are reviewed configuration, spliced into the extract's SELECT:
    a `;` outside quotes and comments would end that statement and start another on the
    source. The server checks again (the probe runs alone, over the extended protocol,
    in a READ ONLY transaction); this is the early, named error.
    """
    if not expression.strip():
        return "an empty expression"
    code = _NOT_CODE.sub(" ", expression)
    if ";" in code:
        return "must be one SQL expression: ';' would end the extract's statement and start another"
    if "'" in code or '"' in code or re.search(r"\$[A-Za-z_]*\$", code) or "/*" in code:
        return "has an unterminated quote or comment"
    return None


class Split(BaseModel):
    """Key ranges one large append table's extract is cut into, read by parallel COPYs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: Ident = Field(description="an integer column of the natural key (never NULL)")
    ranges: int = Field(default=4, ge=2, le=64, description="how many ranges, read at once")


class TableSpec(BaseModel):
    """One source table and how it lands in bronze."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Ident
    mode: Mode
    source: Ident | None = Field(default=None, description="source table name; defaults to name")
    source_schema: Ident | None = Field(
        default=None, description="source schema of this table; defaults to the catalog's source_schema"
    )
    watermark: Ident | None = Field(
        default=None, description="DB-insertion (or update) time column, never device time"
    )
    key: tuple[Ident, ...] = Field(default=(), description="natural key, backed by PK/UNIQUE")
    geometry: tuple[Ident, ...] = ()
    columns: dict[Ident, str] = Field(
        default_factory=dict,
        description="bronze column -> source SQL expression, for drift such as units (seed §8)",
    )
    chunk_rows: int | None = Field(default=None, ge=1)
    cadence_minutes: int | None = Field(default=None, ge=1)
    reconcile_deletes: bool = Field(
        default=False,
        description="after each load, diff the source's keys with bronze's and mark vanished rows "
        "(`_dwh_deleted_at`, never a DELETE); append/merge tables with a key",
    )
    reconcile_chunk_keys: int = Field(
        default=1_000_000, ge=1, description="width of a reconciliation chunk on the key's first column"
    )
    split: Split | None = Field(
        default=None,
        description="append tables: extract the rows between the watermark and the new bound as "
        "disjoint ranges of an integer key column, in parallel; the watermark moves once all loaded",
    )

    @field_validator("columns")
    @classmethod
    def _one_expression_each(cls, columns: dict[str, str]) -> dict[str, str]:
        for column, expression in columns.items():
            problem = expression_problem(expression)
            if problem:
                msg = f"columns.{column}: {problem}"
                raise ValueError(msg)
        return columns

    @model_validator(mode="after")
    def _incremental_needs_watermark_and_key(self) -> TableSpec:
        if self.mode.incremental and self.watermark is None:
            msg = f"mode {self.mode.value} is incremental and needs a watermark column"
            raise ValueError(msg)
        if self.mode.incremental and not self.key:
            msg = f"mode {self.mode.value} needs a natural key backed by a PRIMARY KEY/UNIQUE"
            raise ValueError(msg)
        if self.reconcile_deletes and not (self.mode.incremental and self.key):
            msg = "reconcile_deletes needs an append or merge table with a key (a snapshot is replaced whole)"
            raise ValueError(msg)
        if self.split is not None and self.mode is not Mode.APPEND:
            msg = (
                f"split needs mode append (got {self.mode.value}): ranges load in any order, "
                "which only ON CONFLICT DO NOTHING makes safe"
            )
            raise ValueError(msg)
        if self.split is not None and self.split.column not in self.key:
            msg = (
                f"split.column {self.split.column!r} must be a column of the key {list(self.key)}: "
                "a NULL value would fall in no range"
            )
            raise ValueError(msg)
        if self.watermark is not None and self.watermark in self.columns:
            msg = f"watermark {self.watermark!r} must be a plain source column, not an expression"
            raise ValueError(msg)
        return self

    @property
    def source_table(self) -> str:
        return self.source or self.name


class Schedule(BaseModel):
    """The ingest deployment's schedule (prefect.yaml), for freshness: due by the next run + grace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str
    timezone: str = "UTC"
    grace_minutes: float = Field(default=60, ge=0, description="how long a scheduled run may take")

    @model_validator(mode="after")
    def _valid_cron_and_zone(self) -> Schedule:
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"unknown time zone {self.timezone!r}"
            raise ValueError(msg) from None
        try:
            CronSim(self.cron, datetime.now(UTC).astimezone(zone))
        except CronSimError as exc:
            msg = f"invalid cron {self.cron!r}: {exc}"
            raise ValueError(msg) from None
        return self


class Catalog(BaseModel):
    """All tables of one pipeline plus the names derived from the pipeline's name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pipeline: Ident
    description: str = ""
    source_schema: Ident = "public"
    chunk_rows: int = Field(default=1_000_000, ge=1)
    cadence_minutes: int = Field(default=180, ge=1, description="schedule cadence (freshness)")
    schedule: Schedule | None = Field(
        default=None, description="the ingest deployment's cron: freshness follows it instead of the cadence"
    )
    tables: tuple[TableSpec, ...]
    flow_cadences: dict[str, int] = Field(
        default_factory=dict,
        description="flow name -> minutes between successful runs the health check expects",
    )
    non_empty: tuple[str, ...] = Field(
        default=(), description="schema.table names the health check expects to hold rows"
    )
    export: ExportSpec | None = Field(default=None, description="JSON documents `export_json` publishes")
    path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique_table_names(self) -> Catalog:
        seen: set[str] = set()
        for table in self.tables:
            if table.name in seen:
                msg = f"table {table.name!r} is declared twice"
                raise ValueError(msg)
            seen.add(table.name)
        return self

    # The names derive from the pipeline's (dwh.core.names); here for templates and callers.
    @property
    def bronze_schema(self) -> str:
        return names.bronze_schema(self.pipeline)

    @property
    def control_schema(self) -> str:
        return names.control_schema(self.pipeline)

    @property
    def ledger_schema(self) -> str:
        return names.ledger_schema(self.pipeline)

    @property
    def dwh_schema(self) -> str:
        return names.dwh_schema(self.pipeline)

    @property
    def owner_role(self) -> str:
        return names.owner_role(self.pipeline)

    @property
    def ro_role(self) -> str:
        return names.ro_role(self.pipeline)

    def table(self, name: str) -> TableSpec:
        for table in self.tables:
            if table.name == name:
                return table
        known = ", ".join(t.name for t in self.tables)
        msg = f"pipeline {self.pipeline!r} has no table {name!r} (known: {known})"
        raise CatalogError(msg)

    def select(self, names: list[str] | None) -> list[TableSpec]:
        """The tables a run works on: all of them, or the named ones in catalog order."""
        if not names:
            return list(self.tables)
        wanted = {self.table(n).name for n in names}
        return [t for t in self.tables if t.name in wanted]

    def source_schema_of(self, table: TableSpec) -> str:
        """The schema a table is read from: its own override, else the catalog's."""
        return table.source_schema or self.source_schema

    def chunk_rows_for(self, table: TableSpec) -> int:
        return table.chunk_rows or self.chunk_rows

    def cadence_for(self, table: TableSpec) -> int:
        return table.cadence_minutes or self.cadence_minutes


def _yaml_line(raw: str, table: str | None) -> str:
    """Best-effort 'line N' of a table's entry, so an error points into the file."""
    if table is None:
        return ""
    for number, line in enumerate(raw.splitlines(), start=1):
        if re.match(rf"^\s*{re.escape(table)}\s*:", line) or re.match(
            rf"^\s*-\s*name:\s*{re.escape(table)}\s*$", line
        ):
            return f", line {number}"
    return ""


def _normalise(data: object, path: Path, raw: str) -> dict[str, Any]:
    """Accept `tables:` as a mapping name -> spec (the friendly form) or a list.

    A value of the wrong shape is a CatalogError naming it, never a TypeError: that would
    read as a bug, and the flows would retry it.
    """
    if not isinstance(data, dict):
        msg = f"{path}: expected a mapping at the top level"
        raise CatalogError(msg)
    tables = data.get("tables")
    if isinstance(tables, dict):
        for name, spec in tables.items():
            if spec is not None and not isinstance(spec, dict):
                msg = (
                    f"{path}: table {name!r}{_yaml_line(raw, str(name))}: expected a mapping of settings "
                    f"(mode:, key:, …), got {type(spec).__name__} {spec!r}"
                )
                raise CatalogError(msg)
        data = {**data, "tables": [{"name": k, **(v or {})} for k, v in tables.items()]}
    return data


@functools.lru_cache(maxsize=32)
def _parsed(raw: str, path: Path) -> Catalog:
    """`parse_catalog`, once per text: every table chain of a run resolves the catalog,
    and YAML parsing plus validation cost ~20 ms each. The key is the file's whole text,
    so an edited catalog is read again; a catalog is frozen, so sharing it is safe."""
    return parse_catalog(raw, path)


def parse_catalog(raw: str, path: Path) -> Catalog:
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        msg = f"{path}: not valid YAML: {exc}"
        raise CatalogError(msg) from exc
    data = _normalise(data, path, raw)
    try:
        catalog = Catalog.model_validate({**data, "path": path})
    except ValidationError as exc:
        raise CatalogError(_describe(exc, data, raw, path)) from exc
    return catalog


def _describe(exc: ValidationError, data: dict[str, Any], raw: str, path: Path) -> str:
    lines = [f"{path}: invalid catalog"]
    tables = data.get("tables") or []
    for error in exc.errors():
        loc = list(error["loc"])
        table_name = None
        if len(loc) >= 2 and loc[0] == "tables" and isinstance(loc[1], int):  # noqa: PLR2004
            index = loc[1]
            if index < len(tables) and isinstance(tables[index], dict):
                table_name = tables[index].get("name")
            loc = loc[2:]
        where = f"table {table_name!r}" if table_name else "catalog"
        field = ".".join(str(p) for p in loc) or "(table)"
        lines.append(f"  - {where}{_yaml_line(raw, table_name)}, field {field}: {error['msg']}")
    return "\n".join(lines)


def catalog_path(pipelines_dir: Path, pipeline: str) -> Path:
    return pipelines_dir / f"{pipeline}.yaml"


def load_catalog(pipeline: str, pipelines_dir: Path) -> Catalog:
    """Read and validate `<pipelines_dir>/<pipeline>.yaml`."""
    path = catalog_path(pipelines_dir, pipeline)
    if not path.is_file():
        available = sorted(p.stem for p in pipelines_dir.glob("*.yaml"))
        msg = f"no catalog for pipeline {pipeline!r} at {path} (available: {available})"
        raise CatalogError(msg)
    catalog = _parsed(path.read_text(encoding="utf-8"), path)
    if catalog.pipeline != pipeline:
        msg = f"{path}: declares pipeline {catalog.pipeline!r}, expected {pipeline!r}"
        raise CatalogError(msg)
    return catalog
