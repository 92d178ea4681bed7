"""Task: extract one table into CSV parts in exports/."""

from __future__ import annotations

from prefect import get_run_logger

from dwh.core.settings import source_limit_name
from dwh.ingest.engine import Engine
from dwh.ingest.extract import ExtractResult, extract_table
from dwh.ingest.feed import current_feed
from dwh.ingest.progress import reporter
from tasks.retry import retrying_task
from tasks.source_slots import source_slot
from tasks.tracing import current_flow_run_id


@retrying_task("extract-table", "extract-{table}", persist_result=False)  # the subflow persists it
def extract_table_task(pipeline: str, table: str, repair: bool = False) -> ExtractResult:
    engine = Engine.for_pipeline(pipeline)
    logger = get_run_logger()
    result = extract_table(
        engine,
        engine.catalog.table(table),
        flow_run_id=current_flow_run_id(),
        progress=reporter(logger),
        repair=repair,
        # The parent (or the fan-out chain's flow) created the limit: ensure_source_limit.
        source_slot=source_slot(source_limit_name(engine.source_conninfo)),
        feed=current_feed(),  # the load beside this extract, if the chain started one
    )
    logger.info(
        "%s: extracted %s rows in %s part(s) to %s", table, result.rows, result.parts, result.csv_path
    )
    return result
