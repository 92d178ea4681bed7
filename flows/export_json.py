"""Flow `export_json` (every 15 minutes): publish the datamarts as validated JSON documents.

Readers (a static viewer, an API) follow a pointer that moves only once a new version
is complete and valid (see dwh.analytics.publish). An overlapping export is skipped with a
state message saying so; a quiet run, where no datamart row changed, publishes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from dwh.analytics.export import ExportResult
from dwh.core.names import lock_key
from dwh.core.renamed import renamed_flag
from dwh.ingest.engine import shared_engine
from dwh.ingest.locks import exclusive_run
from dwh.operations.guard import guarded_engine
from flows.outcome import finished, outcome_of
from tasks.export import export_json_task


@dataclass(frozen=True)
class ExportOutcome:
    pipeline: str
    skipped: bool
    result: ExportResult | None = None

    @property
    def message(self) -> str:
        if self.result is None:
            return f"skipped: another export_json run of {self.pipeline} is in progress"
        return self.result.describe()


@flow(name="export_json", flow_run_name="export-json-{pipeline}")
def export_json(pipeline: str, full_refresh: bool = False, full: bool | None = None) -> State[Any]:
    """Render changed documents (all with `full_refresh`, formerly `full`), validate, publish, prune."""
    full_refresh = renamed_flag(full_refresh, full, old="full", new="full_refresh", where="export_json")
    engine = guarded_engine(pipeline)
    lock = lock_key(pipeline, "flow", "export_json")
    with shared_engine(engine), exclusive_run(engine.warehouse_conninfo, lock) as acquired:
        if not acquired:
            return finished(ExportOutcome(pipeline, skipped=True), skipped=True)
        outcome = ExportOutcome(
            pipeline, skipped=False, result=export_json_task(pipeline, full_refresh=full_refresh)
        )
    return finished(outcome)


def export_outcome(state: State[Any]) -> ExportOutcome:
    """The outcome of a finished run (raises what the run raised)."""
    return outcome_of(state, ExportOutcome)
