"""Flow `etl` (osm_notes: every 15 minutes): ingest, build the star schema, refresh datamarts.

Generic: `dwh run` starts it for any pipeline with a star schema (`sql/<p>/transform/`).
Reads like the runbook: take the pipeline's ETL lock or skip, ingest (the engine's
parent flow, as a subflow), transform, refresh the datamarts of the users and countries
the transform marked, so an export reflects facts at most one run old. The lock is a
warehouse advisory lock held for the whole run, so an overlapping run is skipped
wherever it was started (a schedule, `dwh run`, a manual trigger), not only between
runs of one deployment; the skipped run completes with a state message that says so.

With `rebuild` (the nightly deployment, `dwh run osm_notes --rebuild`) the run then keeps
the incremental state, rebuilds facts and datamarts from bronze, and fails naming the
entities where the two differ (the rebuilt rows stay). It is a check, not "redo
everything": that is `full_refresh`, here as on every flow, passed to the ingest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State

from dwh.analytics.datamarts import DatamartResult, datamart_names
from dwh.analytics.rebuild_check import RebuildMismatchError
from dwh.analytics.transform import TransformResult
from dwh.core.names import lock_key
from dwh.ingest.engine import shared_engine
from dwh.ingest.locks import exclusive_run
from dwh.ingest.report import IngestSummary
from dwh.operations.guard import guarded_engine
from flows.ingest import ingest
from flows.outcome import finished, outcome_of
from tasks.datamarts import refresh_datamart_task
from tasks.rebuild_check import snapshot_state_task, state_differences_task
from tasks.transform import transform_task


def skipped_message(pipeline: str) -> str:
    return f"skipped: another {pipeline}_etl run is in progress"


def etl_lock_name(pipeline: str) -> str:
    """The advisory lock an ETL run of the pipeline holds from start to end."""
    return lock_key(pipeline, "flow", "etl")


@dataclass(frozen=True)
class EtlOutcome:
    pipeline: str
    skipped: bool
    ingest: IngestSummary | None = None
    transform: TransformResult | None = None
    datamarts: tuple[DatamartResult, ...] = field(default_factory=tuple)
    rebuild: TransformResult | None = None  # the rebuild from bronze, when asked for

    @property
    def message(self) -> str:
        if self.skipped:
            return skipped_message(self.pipeline)
        parts = [self.transform.describe() if self.transform else "ingested"]
        parts += [r.describe() for r in self.datamarts]
        if self.rebuild is not None:
            parts += [f"rebuilt from bronze: {self.rebuild.describe()}", "incremental equals rebuild"]
        return "; ".join(parts)


@flow(name="etl", flow_run_name="etl-{pipeline}")
def etl(  # noqa: PLR0917  (`dwh run` passes the ingest options by position)
    pipeline: str,
    tables: list[str] | None = None,
    full_refresh: bool = False,
    backfill_from: datetime | None = None,
    repair: bool = False,
    rebuild: bool = False,
) -> State[Any]:
    """Ingest the catalog's tables to bronze, update facts and dimensions, refresh the marked datamart rows.

    `tables`, `full_refresh`, `backfill_from` and `repair` go to the ingest (see `flows.ingest`);
    the transform always processes whatever reached bronze since its last run. `rebuild`
    then rebuilds facts and datamarts from bronze and checks they equal the incremental
    ones (raises `RebuildMismatchError` naming the entities); a rebuild waits for a
    running ETL instead of being skipped.
    """
    engine = guarded_engine(pipeline)
    # Its tasks borrow the engine (shared_engine) instead of resolving their own each.
    with (
        shared_engine(engine),
        exclusive_run(engine.warehouse_conninfo, etl_lock_name(pipeline), wait=rebuild) as acquired,
    ):
        if not acquired:
            return finished(EtlOutcome(pipeline, skipped=True), skipped=True)
        summary = ingest(
            pipeline, tables=tables, full_refresh=full_refresh, backfill_from=backfill_from, repair=repair
        )
        result = transform_task(pipeline)
        names = datamart_names(pipeline, engine.sql_dir)
        marts = tuple(refresh_datamart_task(pipeline, name) for name in names)
        rebuilt = None
        if rebuild:
            snapshot_state_task(pipeline)
            rebuilt = transform_task(pipeline, full_refresh=True)
            marts = tuple(refresh_datamart_task(pipeline, name, full_refresh=True) for name in names)
            differences = state_differences_task(pipeline)
            if differences:
                raise RebuildMismatchError(pipeline, differences)
    outcome = EtlOutcome(
        pipeline, skipped=False, ingest=summary, transform=result, datamarts=marts, rebuild=rebuilt
    )
    return finished(outcome)


def etl_outcome(state: State[Any]) -> EtlOutcome:
    """The outcome of a finished run (raises what the run raised)."""
    return outcome_of(state, EtlOutcome)
