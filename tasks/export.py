"""Task: export a pipeline's datamarts as validated JSON and publish it (over dwh.analytics.export)."""

from __future__ import annotations

from prefect import get_run_logger

from dwh.analytics.export import ExportResult, export_json
from dwh.analytics.targets import open_target
from dwh.core.settings import ExportSettings
from dwh.ingest.engine import Engine
from tasks.retry import retrying_task
from tasks.tracing import current_flow_run_id


@retrying_task("export-json", "export-json-{pipeline}")
def export_json_task(pipeline: str, full_refresh: bool = False) -> ExportResult:
    """One version: changed documents rendered, validated, published atomically, old ones pruned."""
    engine, export = Engine.for_pipeline(pipeline), ExportSettings()  # the flow's engine, when lent
    return export_json(
        engine.catalog,
        engine.warehouse_conninfo,
        engine.sql_dir,
        open_target(export, pipeline),
        full=full_refresh,
        keep_versions=export.keep_versions,
        flow_run_id=current_flow_run_id(),
        logger=get_run_logger(),
    )
