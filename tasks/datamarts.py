"""Task: refresh one datamart of a pipeline (thin wrapper over dwh.analytics.datamarts)."""

from __future__ import annotations

from prefect import get_run_logger

from dwh.analytics.datamarts import DatamartResult, refresh_datamart
from dwh.ingest.engine import Engine
from tasks.retry import retrying_task
from tasks.tracing import current_flow_run_id


@retrying_task("refresh-datamart", "refresh-datamart-{datamart}")
def refresh_datamart_task(pipeline: str, datamart: str, full_refresh: bool = False) -> DatamartResult:
    """The marked entities of one datamart (or all of them), in one transaction."""
    engine = Engine.for_pipeline(pipeline)  # the flow's own, when it lends one
    return refresh_datamart(
        engine.catalog,
        engine.warehouse_conninfo,
        engine.sql_dir,
        datamart,
        full_rebuild=full_refresh,
        flow_run_id=current_flow_run_id(),
        logger=get_run_logger(),
    )
