"""Tell Prefect a table was loaded or held back, for the freshness automations (seed §9).

Plain functions, not tasks: an event is queued to the run's events worker, and a task
run around it cost as much as a quiet table's whole chain.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect.events import emit_event


def table_resource_id(pipeline: str, table: str) -> str:
    return f"dwh.table.{pipeline}.{table}"


def _table_resource(pipeline: str, table: str) -> dict[str, str]:
    """The resource every table event names: automations match on its id."""
    return {
        "prefect.resource.id": table_resource_id(pipeline, table),
        "prefect.resource.name": f"{pipeline}.{table}",
        "dwh.pipeline": pipeline,
        "dwh.table": table,
    }


def emit_table_loaded(pipeline: str, table: str, rows: int, upper_bound: datetime | None) -> None:
    lag = (datetime.now(UTC) - upper_bound).total_seconds() if upper_bound else None
    emit_event(
        event="dwh.table.loaded",
        resource=_table_resource(pipeline, table),
        payload={"rows": rows, "lag_seconds": lag},
    )


def emit_table_stale(pipeline: str, table: str, detail: str) -> None:
    """The health check found the table overdue by its schedule (dwh/core/schedule.py)."""
    emit_event(
        event="dwh.table.stale",
        resource=_table_resource(pipeline, table),
        payload={"detail": detail},
    )


def emit_table_held_back(pipeline: str, table: str, holdback_seconds: float, held_by: str | None) -> None:
    """The table loaded, but its upper bound sits past DWH_MAX_HOLDBACK_MINUTES behind the source."""
    emit_event(
        event="dwh.table.held-back",
        resource=_table_resource(pipeline, table),
        payload={"holdback_seconds": holdback_seconds, "held_by": held_by},
    )
