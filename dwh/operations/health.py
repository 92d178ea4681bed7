"""Hourly health check: can the pipeline run, and has it been running?

Cheap checks only (no row counts: that is `dwh verify`): both databases reachable
with the sslmode in force, storage writable, the exports/ backlog, table freshness
and recent failures, how far an open source transaction holds the extracts back, the
last successful run of each flow within its cadence, datamart-style tables non-empty,
and free disk where parts are spooled.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dwh.core.schedule import load_due
from dwh.core.settings import RunSettings
from dwh.core.sqlfiles import engine_sql
from dwh.ingest.engine import Engine
from dwh.ingest.holdback import latest_holdbacks
from dwh.ingest.load import run_parts
from dwh.ingest.storage import LocalStorage
from dwh.operations.probes import probe_database, probe_storage

MIN_FREE_BYTES = 1 << 30
MIN_FREE_RATIO = 0.05


@dataclass(frozen=True)
class Check:
    check: str
    ok: bool
    detail: str
    tables: tuple[str, ...] = ()  # the tables a failed per-table check names (events per table)
    warning: bool = False  # not ok only warns: shown, but health still passes

    @property
    def failed(self) -> bool:
        return not self.ok and not self.warning


def _reachable(name: str, conninfo: str) -> Check:
    probe = probe_database(conninfo)
    if not probe.ok:
        return Check(f"{name} reachable", ok=False, detail=f"{probe.where}: {probe.error}".strip())
    ssl = "ssl" if probe.ssl_in_use else "no ssl"
    return Check(f"{name} reachable", ok=True, detail=f"{probe.where} ({ssl})")


def _storage_writable(engine: Engine) -> Check:
    probe = probe_storage(engine, "health")
    if not probe.ok:
        return Check("storage writable", ok=False, detail=f"{probe.key_url}: {probe.error}")
    return Check("storage writable", ok=True, detail=probe.prefix_url)


FRESH_CHECK = "tables fresh (by the schedule)"


def _table_checks(engine: Engine, now: datetime) -> list[Check]:
    catalog = engine.catalog
    waiting = {t.name: run_parts(engine.location, catalog.pipeline, t.name) for t in catalog.tables}
    run_ids = [run for runs in waiting.values() for run in runs]
    with psycopg.connect(engine.warehouse_conninfo, autocommit=True) as conn:
        rows = conn.execute(engine_sql(engine.sql_dir, "health_tables", catalog), {"waiting_runs": run_ids})
        states = {str(r[0]): r for r in rows.fetchall()}
    stale: list[str] = []
    stale_tables: list[str] = []
    backlog, failing = [], []
    for table in catalog.tables:
        limit = 2 * catalog.cadence_for(table) * 60
        _, _, oldest_waiting, failures, last = states.get(table.name, (table.name, None, None, 0, None))
        if last is None:
            stale.append(f"{table.name} (never loaded)")
            stale_tables.append(table.name)
        elif (due := load_due(catalog, table, last)).stale(now):
            lag = (now - last).total_seconds() / 3600
            stale.append(f"{table.name} ({lag:.1f} h; due by {due.rule})")
            stale_tables.append(table.name)
        if oldest_waiting is not None and float(oldest_waiting) > limit:
            backlog.append(f"{table.name} ({sum(len(p) for p in waiting[table.name].values())} part(s))")
        if failures:
            failing.append(f"{table.name} ({failures})")
    parts = sum(len(p) for runs in waiting.values() for p in runs.values())
    return [
        Check(FRESH_CHECK, ok=not stale, detail=", ".join(stale) or "all fresh", tables=tuple(stale_tables)),
        Check(
            "exports/ backlog",
            ok=not backlog,
            detail=("stuck: " + ", ".join(backlog)) if backlog else f"{parts} part(s) waiting, none stuck",
        ),
        Check("no failures in 24 h", ok=not failing, detail=", ".join(failing) or "none"),
    ]


def _holdback(engine: Engine) -> Check:
    """A session idle in a source transaction stalls incremental tables while runs "succeed"."""
    limit = RunSettings().max_holdback_minutes
    with psycopg.connect(engine.warehouse_conninfo, autocommit=True) as conn:
        holdbacks = latest_holdbacks(conn, engine.catalog, engine.sql_dir)
    over = [h.describe() for h in holdbacks.values() if h.over(limit)]
    worst = max((h.seconds for h in holdbacks.values()), default=0.0)
    return Check(
        f"source hold-back (< {limit:g} min)",
        ok=not over,
        detail="; ".join(over) or f"largest {worst / 60:,.1f} min",
    )


def _growth(engine: Engine) -> Check:
    """Seed §9: incremental tables growing at the expected rate (a warning, not a failure)."""
    settings = RunSettings()
    tables = [t.name for t in engine.catalog.tables if t.mode.incremental]
    with psycopg.connect(engine.warehouse_conninfo, autocommit=True) as conn:
        rows = conn.execute(
            engine_sql(engine.sql_dir, "health_growth", engine.catalog),
            {"tables": tables, "days": settings.growth_days},
        ).fetchall()
    days, ratio = settings.growth_days, settings.growth_min_ratio
    short = [
        f"{name}: {int(last):,} rows in 24 h, median {float(median):,.0f}/day over {days} days"
        for name, last, median in rows
        if median is not None and float(median) > 0 and int(last) < ratio * float(median)
    ]
    return Check(
        f"tables growing (>= {ratio:g} x median rows/day)",
        ok=not short,
        detail="; ".join(short) or "as expected (or too little history)",
        tables=tuple(s.split(":", 1)[0] for s in short),
        warning=True,
    )


def _non_empty(engine: Engine) -> list[Check]:
    checks = []
    with psycopg.connect(engine.warehouse_conninfo, autocommit=True) as conn:
        for name in engine.catalog.non_empty:
            relation = sql.Identifier(*name.split(".", 1))
            try:
                row = conn.execute(
                    engine_sql(engine.sql_dir, "health_non_empty", engine.catalog, relation=relation)
                )
                has_rows = bool(row.fetchone()[0])  # type: ignore[index]
                detail = "has rows" if has_rows else "empty"
            except psycopg.Error as exc:
                has_rows, detail = False, str(exc).strip()
            checks.append(Check(f"{name} non-empty", ok=has_rows, detail=detail))
    return checks


def _last_success(flow_name: str) -> datetime | None:
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.client.schemas.filters import (  # noqa: PLC0415
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType  # noqa: PLC0415
    from prefect.client.schemas.sorting import FlowRunSort  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
            ),
            sort=FlowRunSort.END_TIME_DESC,
            limit=1,
        )
    return runs[0].end_time if runs else None


def _flow_checks(engine: Engine) -> list[Check]:
    checks = []
    for flow_name, cadence in engine.catalog.flow_cadences.items():
        try:
            ended = _last_success(flow_name)
        except Exception as exc:  # noqa: BLE001  (an unreachable API is the answer)
            checks.append(
                Check(f"flow {flow_name} succeeded recently", ok=False, detail=f"Prefect API: {exc}")
            )
            continue
        if ended is None:
            checks.append(Check(f"flow {flow_name} succeeded recently", ok=False, detail="no successful run"))
            continue
        minutes = (datetime.now(UTC) - ended).total_seconds() / 60
        checks.append(
            Check(
                f"flow {flow_name} succeeded recently",
                ok=minutes <= cadence,
                detail=f"last success {minutes:,.0f} min ago (limit {cadence})",
            )
        )
    return checks


def _disk(path: Path, what: str) -> Check:
    usage = shutil.disk_usage(path)
    ok = usage.free >= MIN_FREE_BYTES and usage.free / usage.total >= MIN_FREE_RATIO
    return Check(
        f"free disk ({what})",
        ok=ok,
        detail=f"{path}: {usage.free / 2**30:,.1f} GiB free of {usage.total / 2**30:,.1f} GiB",
    )


def check_health(engine: Engine, *, prefect: bool = True, now: datetime | None = None) -> list[Check]:
    """Every check, in a stable order; never raises for a failed check.

    `now` is the moment freshness is judged at (the schedule decides what is due).
    """
    checks = [
        _reachable("source", engine.source_conninfo),
        _reachable("warehouse", engine.warehouse_conninfo),
        _storage_writable(engine),
    ]
    if checks[1].ok:
        checks += [
            *_table_checks(engine, now or datetime.now(UTC)),
            _holdback(engine),
            _growth(engine),
            *_non_empty(engine),
        ]
    if prefect:
        checks += _flow_checks(engine)
    checks.append(_disk(Path(tempfile.gettempdir()), "spool"))
    storage: Any = engine.location.storage
    if isinstance(storage, LocalStorage):
        checks.append(_disk(storage.root, "storage"))
    return checks
