"""Flow: weekly maintenance (seed: VACUUM ANALYZE and cleanup jobs), with a summary artifact."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from dwh.operations.guard import guarded_engine
from dwh.operations.maintenance import (
    MaintenanceResult,
    prune_artifacts,
    prune_processed,
    prune_runs,
    vacuum_analyze,
)


@flow(name="maintenance", flow_run_name="maintenance-{pipeline}")
def maintenance(
    pipeline: str, run_log_days: int = 90, artifact_days: int = 30, processed_days: int | None = None
) -> MaintenanceResult:
    """`processed_days=None` keeps processed/ CSVs forever (the seed's audit trail)."""
    engine = guarded_engine(pipeline)
    result = MaintenanceResult(
        vacuumed=tuple(vacuum_analyze(engine)),
        runs_deleted=prune_runs(engine, run_log_days),
        artifacts_deleted=prune_artifacts(pipeline, artifact_days),
        processed_deleted=tuple(
            prune_processed(engine, processed_days) if processed_days is not None else ()
        ),
    )
    create_markdown_artifact(
        key=f"maintenance-{pipeline.replace('_', '-')}",
        markdown=(
            f"# maintenance {pipeline}\n\n"
            f"- VACUUM ANALYZE: {len(result.vacuumed)} tables\n"
            f"- run-log rows deleted (older than {run_log_days} days): {result.runs_deleted}\n"
            f"- artifacts deleted (older than {artifact_days} days): {result.artifacts_deleted}\n"
            f"- processed/ parts deleted: {len(result.processed_deleted)}"
            f"{'' if processed_days is not None else ' (retention off: audit trail kept)'}\n"
        ),
    )
    return result
