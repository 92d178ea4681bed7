"""`dwh init --from-source`: a catalog proposal with the reason for every decision written beside it.

The seed's pre-flight questions (§3) and decision matrix (§6) are answered from the
source's own catalogs: which column is a DB-insertion time (§5.1), which constraint is
the natural key (§5.3), snapshot or incremental, and the geometry columns (§5.6). The
YAML is written as text so each decision keeps its `#` comment; what cannot be guessed
(unit conversions, renames) is said to be declared by hand.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from dwh.core.catalog import Catalog, Mode, TableSpec, parse_catalog
from dwh.onboarding.introspect import SourceColumn, SourceTable, UniqueKey, introspect_source

# Seed §6: above ~10k rows a snapshot CSV stops being "a few MB per run".
SMALL_TABLE_ROWS = 10_000

# Named like a clock that a device, client or event reports: never a watermark (§5.1).
DEVICE_TIME = re.compile(
    r"^(timestamp|ts|time|datetime|event_ts)$"
    r"|(^|_)(gps|device|event|sensor|fix|gnss|client|reported|measured|captured|occurred)(_|$)",
)
# Named like the time a row was last changed: a merge watermark, and a sign rows change.
UPDATE_TIME = re.compile(r"(^|_)(updated|modified|changed|edited)(_|$)|^last_(update|modified|change)")
# Preferred insertion-time names, best first; any other stamped column comes after them.
INSERTION_NAMES = ("recorded_at", "inserted_at", "ingested_at", "received_at", "loaded_at", "created_at")
# A numeric column whose name ends in a unit: bronze may want another unit (seed §8).
UNIT_SUFFIX = re.compile(r"_(m|km|cm|mm|s|ms|min|h|kmh|mph|kg|g|l|pct)$")


@dataclass
class TableProposal:
    """One table's decisions, each with the sentence that justifies it."""

    source: SourceTable
    name: str
    mode: Mode
    mode_reason: str
    key: tuple[str, ...] = ()
    key_reason: str = ""
    watermark: str | None = None
    watermark_reason: str = ""
    rejected_clocks: list[str] = field(default_factory=list)
    geometry: list[SourceColumn] = field(default_factory=list)
    columns_note: str = ""


def _stamped(table: SourceTable, column: SourceColumn) -> str | None:
    """How the database itself stamps a column with the write time, if it does."""
    if not column.is_timestamp:
        return None
    if column.now_default:
        return f"DEFAULT {column.default}"
    if column.name in table.stamped_on_insert | table.stamped_on_update:
        events = [
            e
            for e, cols in (("INSERT", table.stamped_on_insert), ("UPDATE", table.stamped_on_update))
            if column.name in cols
        ]
        return f"set to now() by a BEFORE {'/'.join(events)} trigger"
    return None


def _is_update_time(table: SourceTable, column: SourceColumn) -> bool:
    stamped_on_update_only = (
        column.name in table.stamped_on_update and column.name not in table.stamped_on_insert
    )
    return UPDATE_TIME.search(column.name) is not None or stamped_on_update_only


def _clocks(
    table: SourceTable,
) -> tuple[list[SourceColumn], list[SourceColumn], list[str], list[SourceColumn]]:
    """Insertion-time and update-time candidates, rejected clocks with reasons, event times."""
    inserted, updated, rejected, events = [], [], [], []
    for column in (c for c in table.columns if c.is_timestamp):
        how = _stamped(table, column)
        if DEVICE_TIME.search(column.name):
            rejected.append(
                f"not {column.name}: named like a device/event clock, which skews and arrives late, so a "
                "watermark on it silently drops rows (seed §5.1)"
            )
            events.append(column)
        elif how is None:
            events.append(column)  # set by the application: an event time, not the DB's
        elif _is_update_time(table, column):
            updated.append(column)
        else:
            inserted.append(column)
    rank = {n: i for i, n in enumerate(INSERTION_NAMES)}
    inserted.sort(key=lambda c: rank.get(c.name, len(rank)))
    return inserted, updated, rejected, events


def _natural_key(table: SourceTable) -> tuple[tuple[str, ...], str]:
    """PRIMARY KEY, unless it is one generated surrogate and a UNIQUE natural key exists."""
    if not table.keys:
        return (), "no PRIMARY KEY or UNIQUE constraint: never incremental, ON CONFLICT needs one (seed §5.3)"
    primary = next((k for k in table.keys if k.primary), None)
    uniques = [k for k in table.keys if not k.primary and _all_not_null(table, k)]
    natural = [k for k in uniques if not all(table.column(c).generated_key for c in k.columns)]
    if primary is not None and _is_surrogate(table, primary) and natural:
        chosen = natural[0]
        return chosen.columns, (
            f"UNIQUE {chosen.name}, not the generated PRIMARY KEY ({', '.join(primary.columns)}): "
            "a surrogate the source invented; the natural key keeps a replay idempotent (seed §5.3)"
        )
    if primary is not None:
        return primary.columns, f"PRIMARY KEY {primary.name}"
    if uniques:
        return uniques[0].columns, f"UNIQUE {uniques[0].name} (no PRIMARY KEY)"
    return (), (
        f"UNIQUE {table.keys[0].name} has nullable columns, so NULL keys never conflict: treated as no key, "
        "never incremental (seed §5.3)"
    )


def _is_surrogate(table: SourceTable, key: UniqueKey) -> bool:
    return len(key.columns) == 1 and table.column(key.columns[0]).generated_key


def _all_not_null(table: SourceTable, key: UniqueKey) -> bool:
    return all(table.column(c).not_null for c in key.columns)


def _size(table: SourceTable) -> str:
    return f"~{table.row_estimate:,} rows"


def propose_table(table: SourceTable, name: str | None = None) -> TableProposal:  # noqa: C901, PLR0912  (the §6 matrix reads best as one ladder)
    """Decide mode, key and watermark for one table by the seed's §6 matrix."""
    key, key_reason = _natural_key(table)
    inserted, updated, rejected, events = _clocks(table)
    big = table.row_estimate >= SMALL_TABLE_ROWS
    size = f"{_size(table)} ({'>=' if big else '<'} {SMALL_TABLE_ROWS:,})"
    changes = []
    if updated:
        changes.append(f"{updated[0].name} is stamped on change")
    if table.updates:
        changes.append(f"{table.updates:,} updates seen")
    if table.deletes:
        changes.append(f"{table.deletes:,} deletes seen")
    proposal = TableProposal(
        table, name or table.name, Mode.SNAPSHOT, "", key, key_reason, None, "", rejected
    )
    proposal.geometry = [c for c in table.columns if c.geometry is not None]
    if not key:
        proposal.mode_reason = f"no natural key, so never incremental (seed §5.3); reloaded whole, {size}"
    elif table.deletes:
        proposal.mode_reason = f"{', '.join(changes)}: incremental would keep deleted rows (seed §6)"
    elif changes and not big:
        proposal.mode_reason = (
            f"rows change ({', '.join(changes)}) and {size}: current state matters (seed §6)"
        )
    elif changes and updated:
        proposal.mode, proposal.watermark = Mode.MERGE, updated[0].name
        proposal.mode_reason = f"rows change ({', '.join(changes)}) and {size}: merge changed rows (seed §6)"
        proposal.watermark_reason = (
            f"{_stamped(table, updated[0])}: the DB's update time; check every UPDATE sets it (seed §5.1)"
        )
    elif changes:
        proposal.mode_reason = f"{', '.join(changes)} but no column stamps changes: merge could not see them"
    elif not inserted:
        clocks = ", ".join(c.name for c in events)
        app_set = any(not DEVICE_TIME.search(c.name) for c in events)
        kinds = "device/event time or timestamps the application sets" if app_set else "device/event time"
        proposal.mode_reason = (
            f"no DB-insertion time column (only {kinds}: {clocks})" if clocks else "no timestamp column"
        ) + f", so no safe watermark (seed §5.1); {size}"
    elif big:
        proposal.mode, proposal.watermark = Mode.APPEND, inserted[0].name
        proposal.mode_reason = f"rows only inserted and {size}: incremental (seed §6)"
    elif events:
        proposal.mode, proposal.watermark = Mode.APPEND, inserted[0].name
        proposal.mode_reason = (
            f"event rows (event time {events[0].name}) only inserted, {_size(table)}: history grows, "
            "append (seed §6)"
        )
    else:
        proposal.mode_reason = (
            f"{size} with no event time: snapshot is simpler (seed §6); switch to append on "
            f"{inserted[0].name} when it grows"
        )
    if proposal.watermark is not None and not proposal.watermark_reason:
        column = table.column(proposal.watermark)
        proposal.watermark_reason = f"{_stamped(table, column)}: DB-insertion time (seed §5.1)"
    units = [c.name for c in table.columns if UNIT_SUFFIX.search(c.name) and not c.is_timestamp]
    proposal.columns_note = (
        "columns: none proposed: unit conversions and renames cannot be guessed, declare by hand (seed §8)"
        + (f"; units in names: {', '.join(units)}" if units else "")
    )
    return proposal


def _flow_list(items: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(items) + "]"


KEPT = "kept from the catalog on disk"


def _yaml_block(value: dict[str, Any] | list[Any], indent: int) -> list[str]:
    """A mapping or list as block YAML lines, indented (values are quoted where YAML needs it)."""
    text = yaml.safe_dump(value, default_flow_style=False, allow_unicode=True, sort_keys=False, width=1000)
    return [" " * indent + line for line in text.splitlines()]


def _kept_table_lines(kept: TableSpec) -> list[str]:
    """What only a person can declare for a table: drift expressions, part size, cadence."""
    lines = []
    if kept.chunk_rows is not None:
        lines.append(f"    chunk_rows: {kept.chunk_rows}  # {KEPT}")
    if kept.cadence_minutes is not None:
        lines.append(f"    cadence_minutes: {kept.cadence_minutes}  # {KEPT}")
    if kept.columns:
        lines.append(f"    columns:  # declared by hand (seed §8), {KEPT}")
        lines.extend(_yaml_block(dict(kept.columns), 6))
    return lines


def _entry(proposal: TableProposal, default_schema: str, kept: TableSpec | None = None) -> list[str]:
    """The YAML lines of one table, every decision followed by its reason."""
    table = proposal.source
    lines = [
        (
            f"  # {table.schema}.{table.name}: {_size(table)}; {table.inserts:,} inserts, "
            f"{table.updates:,} updates, {table.deletes:,} deletes seen"
        ),
        f"  {proposal.name}:",
        f"    mode: {proposal.mode.value}  # {proposal.mode_reason}",
    ]
    if proposal.name != table.name:
        lines.append(f"    source: {table.name}  # catalog names are unique across schemas")
    if table.schema != default_schema:
        lines.append(f"    source_schema: {table.schema}")
    if proposal.watermark:
        lines.append(f"    watermark: {proposal.watermark}  # {proposal.watermark_reason}")
    else:
        lines.append("    # watermark: none, a snapshot reloads everything")
    lines.extend(f"    # {reason}" for reason in proposal.rejected_clocks)
    if proposal.key:
        lines.append(f"    key: {_flow_list(proposal.key)}  # {proposal.key_reason}")
    else:
        lines.append(f"    # key: none: {proposal.key_reason}")
    if proposal.geometry:
        described = ", ".join(
            f"{c.name} {c.geometry[0]} SRID {c.geometry[1]}" for c in proposal.geometry if c.geometry
        )
        names = _flow_list([c.name for c in proposal.geometry])
        lines.append(f"    geometry: {names}  # {described}, extracted as EWKT (seed §5.6)")
    hand = _kept_table_lines(kept) if kept is not None else []
    lines.extend(hand or [f"    # {proposal.columns_note}"])
    return lines


def propose_catalog(tables: list[SourceTable]) -> list[TableProposal]:
    """Proposals for every table, named uniquely across the schemas."""
    counts: dict[str, int] = {}
    for table in tables:
        counts[table.name] = counts.get(table.name, 0) + 1
    return [propose_table(t, t.name if counts[t.name] == 1 else f"{t.schema}_{t.name}") for t in tables]


def render_catalog(
    pipeline: str, schemas: list[str], proposals: list[TableProposal], kept: Catalog | None = None
) -> str:
    """The catalog YAML as text, so the comments survive; it loads with load_catalog.

    With `kept` (the catalog already on disk), what the source's catalogs cannot tell is
    carried over instead of reset: the description, part size and cadences, `columns:`
    expressions, health expectations and export documents. Mode, key, watermark and
    geometry are proposed afresh, which is what the diff shows.
    """
    kept_tables = {t.name: t for t in kept.tables} if kept else {}
    lines = [
        f"# Proposed by `dwh init {pipeline} --from-source` from the source's catalogs. Every decision",
        "# carries its reason; review them, declare unit conversions under columns: by hand (seed §8),",
        f"# then `dwh migrations generate {pipeline}` writes the bronze DDL.",
        f"pipeline: {pipeline}",
        *_yaml_block(
            {
                "description": kept.description
                if kept and kept.description
                else f"{pipeline} from source schema(s) {', '.join(schemas)}"
            },
            0,
        ),
        f"source_schema: {schemas[0]}",
    ]
    if kept is None:
        lines += [
            "chunk_rows: 1000000  # rows per CSV part",
            "cadence_minutes: 180  # the schedule's longest gap; freshness alerts after twice this",
        ]
    else:
        lines += [
            f"chunk_rows: {kept.chunk_rows}  # {KEPT}",
            f"cadence_minutes: {kept.cadence_minutes}  # {KEPT}",
        ]
        if kept.schedule is not None:
            lines += [
                f"schedule:  # {KEPT}",
                *_yaml_block(kept.schedule.model_dump(), 2),
            ]
        if kept.flow_cadences:
            lines += [f"flow_cadences:  # {KEPT}", *_yaml_block(dict(kept.flow_cadences), 2)]
        if kept.non_empty:
            lines += [f"non_empty:  # {KEPT}", *_yaml_block(list(kept.non_empty), 2)]
    lines += ["", "tables:"]
    for proposal in proposals:
        lines.extend(_entry(proposal, schemas[0], kept_tables.get(proposal.name)))
    gone = sorted(set(kept_tables) - {p.name for p in proposals})
    if gone:
        lines.append(
            f"  # not in the source, so no longer proposed: {', '.join(gone)} (the catalog on disk has them)"
        )
    if kept is not None and kept.export is not None:
        documents: dict[str, Any] = {
            d.name: {"path": d.path, "each_publish": True} if d.each_publish else d.path
            for d in kept.export.documents
        }
        lines += ["", f"export:  # {KEPT}", "  documents:", *_yaml_block(documents, 4)]
    return "\n".join(_one_line(line) for line in lines) + "\n"


# Every entry of a proposal is one line. A source identifier (a constraint, column or
# table name) may hold a line break: written raw into a `# reason` comment it would end
# the comment and turn the rest of the name into catalog entries.
_BREAKS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, 0x85) if c != ord("\t")}
_BREAKS |= {0x2028: "\\u2028", 0x2029: "\\u2029"}


def _one_line(line: str) -> str:
    return line.translate(_BREAKS)


def propose_from_source(
    conn: psycopg.Connection[Any],
    sql_dir: Path,
    pipeline: str,
    schemas: list[str],
    kept: Catalog | None = None,
) -> str:
    """Introspect the source and return the catalog text; it is validated before anyone writes it."""
    tables = introspect_source(conn, sql_dir, schemas)
    if not tables:
        msg = f"source schema(s) {', '.join(schemas)} hold no tables: check --schema and DWH_SOURCE_URL"
        raise ValueError(msg)
    return render_catalog(pipeline, schemas, propose_catalog(tables), kept)


def check_proposal(text: str, path: Path) -> Catalog:
    """Fail before writing if the proposal would not load (the same validation as every run)."""
    return parse_catalog(text, path)


def catalog_diff(old: str, new: str, path: Path) -> str:
    """A unified diff from the catalog on disk to the proposal; empty when they agree."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=str(path),
            tofile=f"{path} (proposed)",
        )
    )
