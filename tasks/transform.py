"""Task: bring a pipeline's star schema up to date with bronze (thin wrapper over dwh.transform)."""

from __future__ import annotations

from uuid import UUID

from prefect import get_run_logger, task
from prefect.runtime import flow_run

from dwh.catalog import load_catalog
from dwh.settings import RunSettings, WarehouseSettings
from dwh.transform import TransformResult, run_transform


def current_flow_run_id() -> UUID | None:
    """Ties the run-log row to the Prefect flow run, for tracing a row back to its logs."""
    run_id = flow_run.get_id()
    return UUID(run_id) if run_id else None


@task(name="transform", task_run_name="transform-{pipeline}")
def transform_task(pipeline: str, rebuild: bool = False) -> TransformResult:
    """One transaction: dimensions, facts, datamart marks and the transform watermark."""
    run = RunSettings()
    return run_transform(
        load_catalog(pipeline, run.pipelines_dir),
        WarehouseSettings().owner_conninfo(pipeline),  # type: ignore[call-arg]
        run.sql_dir,
        rebuild=rebuild,
        flow_run_id=current_flow_run_id(),
        logger=get_run_logger(),
    )
