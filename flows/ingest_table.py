"""Flow `ingest-table`: one table's chain as its own flow run (the fan-out mode of `ingest`).

`ingest` with fan_out starts one run of this flow's deployment per table, so the chains
of one parent spread over every worker of the pool instead of the parent's threads. The
chain is the in-process one (flows/ingest.py `table_chain`): same lock, recovery,
extract, load and reconciliation. Its outcome persists to the storage the parent
reads it back from.
"""

from __future__ import annotations

from prefect import flow
from prefect.context import FlowRunContext

from dwh.core.results import result_storage_slug
from dwh.core.settings import StorageSettings
from dwh.ingest.engine import shared_engine
from dwh.ingest.report import TableOutcome
from dwh.operations.guard import guarded_engine
from flows.ingest import subflows_without_heartbeats, table_chain
from tasks.source_slots import ensure_source_limit


@flow(
    name="ingest-table",
    flow_run_name="ingest-{pipeline}-{table}",
    persist_result=True,
    # Read when the worker imports this module: the run's own DWH_STORAGE_URL.
    result_storage=result_storage_slug(StorageSettings()),
)
def ingest_table_flow(pipeline: str, table: str, repair: bool = False) -> TableOutcome:
    """Recover, extract, load (and reconcile) one table, under its lock."""
    engine = guarded_engine(pipeline)  # the worker's own credentials: checked here, too
    ensure_source_limit(engine)  # already there when a parent dispatched this run
    storage = FlowRunContext.get().result_store.result_storage  # type: ignore[union-attr]
    with shared_engine(engine), subflows_without_heartbeats():
        return table_chain(pipeline, table, repair, storage)  # type: ignore[arg-type]
