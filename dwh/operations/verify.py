"""The seed's verification gates (§9) as one check: is the pipeline really done?

Every table loaded, row parity with the source (rows above the watermark are in
flight, not missing), geometry round trip (same EWKT, SRID kept, NULL stays NULL), no
part left in exports/, freshness by the schedule (dwh/core/schedule.py), no failures in 24 hours, and
no incremental table held back by an open source transaction past DWH_MAX_HOLDBACK_MINUTES.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from dwh.core.catalog import TableSpec
from dwh.core.schedule import load_due
from dwh.core.settings import RunSettings
from dwh.core.sqlfiles import engine_sql
from dwh.ingest.drift import quoted, relation_columns
from dwh.ingest.engine import Engine
from dwh.ingest.holdback import Holdback, latest_holdbacks
from dwh.ingest.load import run_parts


@dataclass(frozen=True)
class Gate:
    gate: str
    table: str
    ok: bool
    detail: str
    fix: str = ""


def _q(engine: Engine, name: str, **parts: sql.Composable) -> sql.Composed:
    return engine_sql(engine.sql_dir, name, engine.catalog, **parts)


def _scope(table: TableSpec, watermark: datetime | None) -> sql.Composable:
    if table.mode.incremental and table.watermark is not None:
        return sql.SQL("{} <= {}").format(sql.Identifier(table.watermark), sql.Literal(watermark))
    return sql.SQL("TRUE")


def _count(
    engine: Engine, conn: psycopg.Connection[Any], relation: sql.Composable, scope: sql.Composable
) -> int:
    row = conn.execute(_q(engine, "verify_counts", relation=relation, in_scope=scope)).fetchone()
    return int(row[0]) if row else 0


def _sample(  # noqa: PLR0917
    engine: Engine,
    conn: psycopg.Connection[Any],
    relation: sql.Composable,
    table: TableSpec,
    column: str,
    scope: sql.Composable,
) -> list[tuple[Any, ...]]:
    key = sql.SQL(", ").join(map(sql.Identifier, table.key))
    key_text = sql.SQL("concat_ws('|', {})").format(key)
    geom = sql.Identifier(column)
    ewkt = sql.SQL("CASE WHEN {0} IS NULL THEN NULL ELSE ST_AsEWKT({0}) END").format(geom)
    query = _q(
        engine,
        "verify_geometry_sample",
        relation=relation,
        key=key,
        key_text=key_text,
        ewkt=ewkt,
        in_scope=scope,
    )
    return conn.execute(query).fetchall()


def _holdback_gate(table: TableSpec, holdback: Holdback | None, limit: float) -> list[Gate]:
    if not table.mode.incremental or holdback is None:
        return []
    return [
        Gate(
            "source hold-back",
            table.name,
            ok=not holdback.over(limit),
            detail=f"{holdback.describe()} (limit {limit:g} min)",
            fix="end the holding source session (commit, or pg_terminate_backend(pid) on the source), "
            "then run again: docs/runbook.md 'Tables held back'",
        )
    ]


def _table_gates(  # noqa: PLR0917
    engine: Engine,
    table: TableSpec,
    state: dict[str, Any] | None,
    source: psycopg.Connection[Any],
    warehouse: psycopg.Connection[Any],
    holdback: Holdback | None = None,
    now: datetime | None = None,
) -> list[Gate]:
    now = now or datetime.now(UTC)
    name = table.name
    pipeline = engine.catalog.pipeline
    failures = int(state["failures"]) if state else 0
    gates = [
        *_holdback_gate(table, holdback, RunSettings().max_holdback_minutes),
        Gate(
            "no recent failures",
            name,
            ok=failures == 0,
            detail=f"{failures} failed run(s) in 24 h"
            + (f": {state['last_error']}" if state and failures else ""),
            fix="read error_message in v_recent_failures; the parts wait in exports/ and load next run",
        ),
    ]
    if state is None or state["last_loaded_at"] is None:
        gates.append(
            Gate("loaded", name, ok=False, detail="never loaded", fix=f"dwh run {pipeline} --table {name}")
        )
        return gates
    gates.append(
        Gate("loaded", name, ok=True, detail=f"last load {state['last_loaded_at']:%Y-%m-%d %H:%M:%S%z}")
    )

    due = load_due(engine.catalog, table, state["last_loaded_at"])
    lag = (now - state["last_loaded_at"]).total_seconds()
    gates.append(
        Gate(
            "freshness",
            name,
            ok=not due.stale(now),
            detail=f"lag {lag / 60:,.1f} min (due by {due.rule})",
            fix="check the schedule and worker; v_watermark_lag shows extract vs load",
        )
    )

    scope = _scope(table, state["last_extracted_at"])
    bronze = sql.Identifier(engine.catalog.bronze_schema, name)
    origin = sql.Identifier(engine.catalog.source_schema_of(table), table.source_table)
    in_source = _count(engine, source, origin, scope)
    # Rows the delete reconciliation marked are gone from the source: not counted.
    live = sql.SQL("_dwh_deleted_at IS NULL") if table.reconcile_deletes else sql.SQL("TRUE")
    in_bronze = _count(engine, warehouse, bronze, live)
    if table.mode.incremental:
        parity_ok, tolerance = in_bronze == in_source, "exact up to the watermark"
    else:
        parity_ok, tolerance = abs(in_bronze - in_source) <= in_source // 100, "within 1% (snapshot)"
    gates.append(
        Gate(
            "row parity",
            name,
            ok=parity_ok,
            detail=f"source {in_source:,} / bronze {in_bronze:,} ({tolerance})",
            fix=(
                "compare rows_extracted and rows_loaded in extract_runs; "
                f"backfill with dwh run {pipeline} --full-refresh"
            ),
        )
    )
    gates += _conversion_gates(engine, table, source, warehouse, origin, bronze, scope)
    fix = (
        "check the CASE WHEN … ST_AsEWKT guard and the bronze column's SRID, then "
        f"dwh run {pipeline} --table {name} --repair"
    )
    for column in table.geometry:
        if table.mode.incremental:
            # Rows at or below the watermark never change in an append table: compare
            # the keys both samples hold (a missing row is the parity gate's business).
            theirs = dict(_sample(engine, source, origin, table, column, scope))
            ours = dict(_sample(engine, warehouse, bronze, table, column, sql.SQL("TRUE")))
            differ = sorted(k for k in theirs.keys() & ours.keys() if theirs[k] != ours[k])
            same = bool(theirs.keys() & ours.keys()) and not differ
            detail = (
                f"{len(theirs.keys() & ours.keys())} sampled keys: same EWKT"
                if same
                else f"EWKT differs for key(s) {', '.join(map(str, differ[:5])) or '(no common keys)'}"
            )
        else:
            # A snapshot may have changed in the source since it loaded: compare SRIDs.
            srids = [
                _srids(engine, conn, rel, column) for conn, rel in ((source, origin), (warehouse, bronze))
            ]
            same = srids[0] == srids[1]
            detail = f"SRIDs source {sorted(srids[0])} / bronze {sorted(srids[1])}"
        gates.append(Gate("geometry round trip", f"{name}.{column}", ok=same, detail=detail, fix=fix))
    return gates


def _conversion_gates(  # noqa: PLR0917
    engine: Engine,
    table: TableSpec,
    source: psycopg.Connection[Any],
    warehouse: psycopg.Connection[Any],
    origin: sql.Composable,
    bronze: sql.Composable,
    scope: sql.Composable,
) -> list[Gate]:
    """Each declared `columns:` expression, computed on the source, equals what bronze holds.

    Only incremental tables: rows at or below the watermark do not change in the source
    (a merge row that did has a newer watermark and leaves the sample), while a snapshot
    may have changed since it loaded.
    """
    if not table.mode.incremental or not table.columns:
        return []
    catalog = engine.catalog
    types = {
        c.name: c.type
        for c in relation_columns(warehouse, engine.sql_dir, quoted(catalog.bronze_schema, table.name))
    }
    key = sql.SQL(", ").join(map(sql.Identifier, table.key))
    key_text = sql.SQL("concat_ws('|', {})").format(key)
    gates = []
    for column, expression in table.columns.items():
        if column in table.geometry or column not in types:
            continue  # geometry has its own gate; a missing column is drift's business
        theirs_value = sql.SQL("CAST(({}) AS {})").format(sql.SQL(expression), sql.SQL(types[column]))
        ours_value = sql.Identifier(column)
        theirs = dict(
            source.execute(
                _q(
                    engine,
                    "verify_value_sample",
                    relation=origin,
                    key=key,
                    key_text=key_text,
                    value=theirs_value,
                    in_scope=scope,
                )
            ).fetchall()
        )
        ours = dict(
            warehouse.execute(
                _q(
                    engine,
                    "verify_value_sample",
                    relation=bronze,
                    key=key,
                    key_text=key_text,
                    value=ours_value,
                    in_scope=sql.SQL("TRUE"),
                )
            ).fetchall()
        )
        common = sorted(theirs.keys() & ours.keys())
        differ = [k for k in common if theirs[k] != ours[k]]
        example = (
            f" (key {differ[0]}: source gives {theirs[differ[0]]}, bronze has {ours[differ[0]]})"
            if differ
            else ""
        )
        gates.append(
            Gate(
                "declared conversion",
                f"{table.name}.{column}",
                ok=not differ,
                detail=(
                    f"{len(differ)} of {len(common)} sampled keys differ from `{expression}`{example}"
                    if differ
                    else f"{len(common)} sampled keys equal `{expression}`"
                ),
                fix=(
                    f"fix the expression under {table.name}.columns in the catalog, then "
                    f"dwh run {catalog.pipeline} --table {table.name} --repair"
                ),
            )
        )
    return gates


def _srids(engine: Engine, conn: psycopg.Connection[Any], relation: sql.Composable, column: str) -> set[int]:
    row = conn.execute(_q(engine, "verify_srids", relation=relation, geom=sql.Identifier(column))).fetchone()
    return set(row[0]) if row else set()


def verify(engine: Engine, now: datetime | None = None) -> list[Gate]:
    """Run every gate for every table of the pipeline; never raises for a failed gate.

    `now` is the moment freshness is judged at (the schedule decides what is due).
    """
    catalog = engine.catalog
    with (
        psycopg.connect(engine.source_conninfo, autocommit=True) as source,
        psycopg.connect(engine.warehouse_conninfo, autocommit=True) as warehouse,
    ):
        for conn in (source, warehouse):
            conn.execute("SET TIME ZONE 'UTC'")  # key text must render alike on both sides
        with warehouse.cursor(row_factory=psycopg.rows.dict_row) as cur:
            cur.execute(_q(engine, "verify_loaded"), {"tables": [t.name for t in catalog.tables]})
            states = {row["table_name"]: row for row in cur.fetchall()}
        held = latest_holdbacks(warehouse, catalog, engine.sql_dir)
        gates = [
            g
            for t in catalog.tables
            for g in _table_gates(engine, t, states.get(t.name), source, warehouse, held.get(t.name), now)
        ]
    waiting = [
        key
        for t in catalog.tables
        for keys in run_parts(engine.location, catalog.pipeline, t.name).values()
        for key in keys
    ]
    gates.append(
        Gate(
            "exports/ empty",
            "*",
            ok=not waiting,
            detail=f"{len(waiting)} part(s) waiting" + (f", oldest {waiting[0]}" if waiting else ""),
            fix=f"dwh run {catalog.pipeline} loads them; a failing one is named in v_recent_failures",
        )
    )
    return gates
