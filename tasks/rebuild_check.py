"""Tasks: keep the incremental state before a rebuild, list what it changed (dwh.analytics.rebuild_check)."""

from __future__ import annotations

from prefect import get_run_logger

from dwh.analytics.rebuild_check import StateDifference, snapshot_state, state_differences
from dwh.ingest.engine import Engine
from tasks.retry import retrying_task


@retrying_task("snapshot-state", "snapshot-state-{pipeline}")
def snapshot_state_task(pipeline: str) -> None:
    """One hash per note, user, country and global row of the incremental state."""
    engine = Engine.for_pipeline(pipeline)  # the flow's own, when it lends one
    snapshot_state(engine.catalog, engine.warehouse_conninfo, engine.sql_dir, logger=get_run_logger())


@retrying_task("compare-state", "compare-state-{pipeline}")
def state_differences_task(pipeline: str) -> list[StateDifference]:
    """The entities whose rebuilt state differs from the snapshot."""
    engine = Engine.for_pipeline(pipeline)  # the flow's own, when it lends one
    logger = get_run_logger()
    return state_differences(engine.catalog, engine.warehouse_conninfo, engine.sql_dir, logger=logger)
