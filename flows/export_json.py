"""Flow `export_json` (every 15 minutes): publish the datamarts as validated JSON documents.

Readers (a static viewer, an API) follow a pointer that moves only once a new version
is complete and valid (see dwh.publish). An overlapping export is skipped with a
state message saying so; a quiet run, where no datamart row changed, publishes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.states import Completed

from dwh.export import ExportResult
from dwh.settings import WarehouseSettings
from dwh.transform import exclusive_run
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
def export_json(pipeline: str = "osm_notes", full: bool = False) -> State[Any]:
    """Render changed documents (all with `full`), validate, publish, keep the last versions."""
    conninfo = WarehouseSettings().owner_conninfo(pipeline)  # type: ignore[call-arg]
    with exclusive_run(conninfo, f"dwh:{pipeline}:export") as acquired:
        if not acquired:
            outcome = ExportOutcome(pipeline, skipped=True)
            get_run_logger().warning("%s", outcome.message)
            return Completed(message=outcome.message, data=outcome)
        outcome = ExportOutcome(pipeline, skipped=False, result=export_json_task(pipeline, full=full))
    return Completed(message=outcome.message, data=outcome)


def export_outcome(state: State[Any]) -> ExportOutcome:
    """The outcome of a finished `export_json` run (raises what the run raised)."""
    outcome = state.result()
    if not isinstance(outcome, ExportOutcome):
        msg = f"export_json returned {type(outcome).__name__}, expected ExportOutcome"
        raise TypeError(msg)
    return outcome
