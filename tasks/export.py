"""Task: export a pipeline's datamarts as validated JSON and publish it (thin wrapper over dwh.export)."""

from __future__ import annotations

from prefect import get_run_logger, task

from dwh.catalog import load_catalog
from dwh.export import ExportResult, export_json
from dwh.publish import open_target
from dwh.settings import ExportSettings, RunSettings, WarehouseSettings
from tasks.retry import RETRY_DELAYS, transient_only
from tasks.tracing import current_flow_run_id


@task(
    name="export-json",
    task_run_name="export-json-{pipeline}",
    retries=len(RETRY_DELAYS),
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def export_json_task(pipeline: str, full: bool = False) -> ExportResult:
    """One version: changed documents rendered, validated, published atomically, old ones pruned."""
    run, export = RunSettings(), ExportSettings()
    return export_json(
        load_catalog(pipeline, run.pipelines_dir),
        WarehouseSettings().owner_conninfo(pipeline),  # type: ignore[call-arg]
        run.sql_dir,
        open_target(export, pipeline),
        full=full,
        keep_versions=export.keep_versions,
        flow_run_id=current_flow_run_id(),
        logger=get_run_logger(),
    )
