"""Task: load everything waiting in exports/ for one table, oldest run first."""

from __future__ import annotations

from prefect import get_run_logger

from dwh.ingest.engine import Engine
from dwh.ingest.feed import current_feed
from dwh.ingest.load import LoadResult, load_following, load_pending
from dwh.ingest.progress import reporter
from tasks.retry import retrying_task


@retrying_task("load-table", "load-{table}", persist_result=False)  # the subflow persists it
def load_pending_task(pipeline: str, table: str) -> list[LoadResult]:
    engine = Engine.for_pipeline(pipeline)
    logger = get_run_logger()
    spec, progress = engine.catalog.table(table), reporter(logger)
    # Beside an extract in this chain, its run loads part by part as the extract publishes.
    feed = current_feed()
    if feed is not None:
        results = load_following(engine, spec, feed, progress=progress)
    else:
        results = load_pending(engine, spec, progress=progress)
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
