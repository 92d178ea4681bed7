"""Task: bring a pipeline's star schema up to date with bronze (thin wrapper over dwh.analytics.transform)."""

from __future__ import annotations

from prefect import get_run_logger

from dwh.analytics.transform import TransformResult, run_transform
from dwh.ingest.engine import Engine
from tasks.retry import retrying_task
from tasks.tracing import current_flow_run_id


@retrying_task("transform", "transform-{pipeline}")
def transform_task(pipeline: str, full_refresh: bool = False) -> TransformResult:
    """One transaction: dimensions, facts, datamart marks and the transform watermark."""
    engine = Engine.for_pipeline(pipeline)  # the flow's own, when it lends one
    return run_transform(
        engine.catalog,
        engine.warehouse_conninfo,
        engine.sql_dir,
        rebuild=full_refresh,
        flow_run_id=current_flow_run_id(),
        logger=get_run_logger(),
    )
