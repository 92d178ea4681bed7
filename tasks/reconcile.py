"""Task: mark the bronze rows of one table whose key vanished from the source (dwh.ingest.reconcile)."""

from __future__ import annotations

from prefect import get_run_logger

from dwh.ingest.engine import Engine
from dwh.ingest.reconcile import ReconcileResult, reconcile_table
from tasks.retry import retrying_task
from tasks.tracing import current_flow_run_id


@retrying_task("reconcile-deletes", "reconcile-{table}")
def reconcile_task(pipeline: str, table: str) -> ReconcileResult:
    """Diff the source's keys with bronze's, chunk by chunk; counts go to the run log."""
    engine = Engine.for_pipeline(pipeline)  # the chain's own, when it lends one
    return reconcile_table(
        engine, engine.catalog.table(table), flow_run_id=current_flow_run_id(), logger=get_run_logger()
    )
