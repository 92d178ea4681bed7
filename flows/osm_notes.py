"""Flow `osm_notes_etl` (every 15 minutes): ingest the OSM-notes tables, then build the star schema.

Reads like the runbook: take the pipeline's ETL lock or skip, ingest (the engine's
parent flow, as a subflow), transform. The lock is a warehouse advisory lock held for
the whole run, so an overlapping run is skipped wherever it was started (a schedule,
`dwh run`, a manual trigger), not only between runs of one deployment; the skipped
run completes with a state message that says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from dwh.guard import guarded_engine
from dwh.report import IngestSummary
from dwh.transform import TransformResult, exclusive_run
from flows.ingest import ingest
from flows.outcome import finished, outcome_of
from tasks.transform import transform_task

PIPELINE = "osm_notes"


def skipped_message(pipeline: str) -> str:
    return f"skipped: another {pipeline}_etl run is in progress"


def etl_lock_name(pipeline: str) -> str:
    """The advisory lock an ETL run of the pipeline holds from start to end."""
    return f"dwh:{pipeline}:etl"


@dataclass(frozen=True)
class EtlOutcome:
    pipeline: str
    skipped: bool
    ingest: IngestSummary | None = None
    transform: TransformResult | None = None

    @property
    def message(self) -> str:
        if self.skipped:
            return skipped_message(self.pipeline)
        return self.transform.describe() if self.transform else "ingested"


@flow(name="osm_notes_etl", flow_run_name="osm-notes-etl")
def osm_notes_etl(
    pipeline: str = PIPELINE,
    tables: list[str] | None = None,
    full_refresh: bool = False,
    backfill_from: datetime | None = None,
    repair: bool = False,
) -> State[Any]:
    """Ingest the catalog's tables to bronze, then update facts, dimensions and datamart marks.

    `tables`, `full_refresh`, `backfill_from` and `repair` go to the ingest (see `flows.ingest`);
    the transform always processes whatever reached bronze since its last run.
    """
    conninfo = guarded_engine(pipeline).warehouse_conninfo
    with exclusive_run(conninfo, etl_lock_name(pipeline)) as acquired:
        if not acquired:
            return finished(EtlOutcome(pipeline, skipped=True), skipped=True)
        summary = ingest(
            pipeline, tables=tables, full_refresh=full_refresh, backfill_from=backfill_from, repair=repair
        )
        result = transform_task(pipeline)
    outcome = EtlOutcome(pipeline, skipped=False, ingest=summary, transform=result)
    return finished(outcome)


def etl_outcome(state: State[Any]) -> EtlOutcome:
    """The outcome of a finished run (raises what the run raised)."""
    return outcome_of(state, EtlOutcome)
