"""Flow: the hourly health check, as an artifact, an event for automations and a state."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from dwh.operations.guard import guarded_engine
from dwh.operations.health import FRESH_CHECK, Check, check_health
from tasks.events import emit_table_stale


def health_markdown(pipeline: str, checks: list[Check]) -> str:
    rows = [f"# health {pipeline}", "", "| check | result | detail |", "|---|---|---|"]
    rows += [
        f"| {c.check} | {'ok' if c.ok else 'WARN' if c.warning else 'FAIL'} | {c.detail} |" for c in checks
    ]
    return "\n".join(rows) + "\n"


@flow(name="health", flow_run_name="health-{pipeline}")
def health(pipeline: str) -> list[Check]:
    checks = check_health(guarded_engine(pipeline, tolerate_unreachable=True))
    failed = [c for c in checks if c.failed]
    create_markdown_artifact(
        markdown=health_markdown(pipeline, checks), key=f"health-{pipeline.replace('_', '-')}"
    )
    emit_event(
        event="dwh.health.failed" if failed else "dwh.health.ok",
        resource={"prefect.resource.id": f"dwh.pipeline.{pipeline}", "dwh.pipeline": pipeline},
        payload={
            "failed": [c.check for c in failed],
            "warnings": [c.check for c in checks if not c.ok and c.warning],
        },
    )
    for check in failed:
        if check.check == FRESH_CHECK:
            # One event per overdue table: the automation "overdue by its schedule" notifies.
            for table in check.tables:
                emit_table_stale(pipeline, table, check.detail)
    if failed:
        msg = f"{len(failed)} health check(s) failed: " + "; ".join(f"{c.check}: {c.detail}" for c in failed)
        raise RuntimeError(msg)
    return checks
