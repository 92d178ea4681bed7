"""Task: refresh one datamart of a pipeline (thin wrapper over dwh.datamarts)."""

from __future__ import annotations

from prefect import get_run_logger, task

from dwh.catalog import load_catalog
from dwh.datamarts import DatamartResult, refresh_datamart
from dwh.settings import RunSettings, WarehouseSettings
from tasks.retry import RETRY_DELAYS, transient_only
from tasks.tracing import current_flow_run_id


@task(
    name="refresh-datamart",
    task_run_name="refresh-datamart-{datamart}",
    retries=len(RETRY_DELAYS),
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def refresh_datamart_task(pipeline: str, datamart: str, full_rebuild: bool = False) -> DatamartResult:
    """The marked entities of one datamart (or all of them), in one transaction."""
    run = RunSettings()
    return refresh_datamart(
        load_catalog(pipeline, run.pipelines_dir),
        WarehouseSettings().owner_conninfo(pipeline),  # type: ignore[call-arg]
        run.sql_dir,
        datamart,
        full_rebuild=full_rebuild,
        flow_run_id=current_flow_run_id(),
        logger=get_run_logger(),
    )
