"""The Prefect flow run a task belongs to, for the run-log rows it writes."""

from __future__ import annotations

from uuid import UUID

from prefect.runtime import flow_run


def current_flow_run_id() -> UUID | None:
    """Ties a run-log row to the Prefect flow run, for tracing a row back to its logs."""
    run_id = flow_run.get_id()
    return UUID(run_id) if run_id else None
