"""Flow `datamarts` (nightly): refresh the users, countries and global datamarts.

Only the users and countries the ETL marked since the last refresh are recomputed,
unless `full_refresh` (formerly `full_rebuild`, still accepted for one release); both
give the same rows. Like the ETL, a refresh that overlaps another one is skipped with a
state message saying so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from dwh.analytics.datamarts import DatamartResult, datamart_names
from dwh.core.names import lock_key
from dwh.core.renamed import renamed_flag
from dwh.ingest.engine import shared_engine
from dwh.ingest.locks import exclusive_run
from dwh.operations.guard import guarded_engine
from flows.outcome import finished, outcome_of
from tasks.datamarts import refresh_datamart_task


@dataclass(frozen=True)
class DatamartsOutcome:
    pipeline: str
    skipped: bool
    results: tuple[DatamartResult, ...] = field(default_factory=tuple)

    @property
    def message(self) -> str:
        if self.skipped:
            return f"skipped: another datamarts run of {self.pipeline} is in progress"
        return "; ".join(r.describe() for r in self.results)


@flow(name="datamarts", flow_run_name="datamarts-{pipeline}")
def datamarts(pipeline: str, full_refresh: bool = False, full_rebuild: bool | None = None) -> State[Any]:
    """Refresh every datamart of the pipeline, one transaction each (every row with `full_refresh`)."""
    full_refresh = renamed_flag(
        full_refresh, full_rebuild, old="full_rebuild", new="full_refresh", where="datamarts"
    )
    engine = guarded_engine(pipeline)
    lock = lock_key(pipeline, "flow", "datamarts")
    with shared_engine(engine), exclusive_run(engine.warehouse_conninfo, lock) as acquired:
        if not acquired:
            return finished(DatamartsOutcome(pipeline, skipped=True), skipped=True)
        results = tuple(
            refresh_datamart_task(pipeline, name, full_refresh=full_refresh)
            for name in datamart_names(pipeline, engine.sql_dir)
        )
    outcome = DatamartsOutcome(pipeline, skipped=False, results=results)
    return finished(outcome)


def datamarts_outcome(state: State[Any]) -> DatamartsOutcome:
    """The outcome of a finished run (raises what the run raised)."""
    return outcome_of(state, DatamartsOutcome)
