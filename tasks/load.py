"""Task: load everything waiting in exports/ for one table, oldest run first."""

from __future__ import annotations

from prefect import get_run_logger, task

from dwh.engine import Engine
from dwh.load import LoadResult, load_pending
from dwh.progress import reporter
from tasks.retry import RETRY_DELAYS, transient_only


@task(
    name="load-table",
    task_run_name="load-{table}",
    retries=len(RETRY_DELAYS),
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_only,
)
def load_pending_task(pipeline: str, table: str) -> list[LoadResult]:
    engine = Engine.from_settings(pipeline)
    logger = get_run_logger()
    results = load_pending(engine, engine.catalog.table(table), progress=reporter(logger))
    for result in results:
        logger.info(
            "%s: run %s loaded %s rows (%s skipped as duplicates or unchanged), moved %s part(s)",
            table,
            result.run_id,
            result.rows_loaded,
            result.rows_skipped,
            len(result.moved),
        )
    return results
