"""Flow: the seed's verification gates (§9), with a markdown artifact of the result."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from dwh.operations.guard import guarded_engine
from dwh.operations.verify import Gate, verify


def gates_markdown(pipeline: str, gates: list[Gate]) -> str:
    rows = [f"# verify {pipeline}", "", "| gate | table | result | detail |", "|---|---|---|---|"]
    rows += [f"| {g.gate} | {g.table} | {'pass' if g.ok else 'FAIL'} | {g.detail} |" for g in gates]
    return "\n".join(rows) + "\n"


@flow(name="verify", flow_run_name="verify-{pipeline}")
def verify_pipeline(pipeline: str) -> list[Gate]:
    gates = verify(guarded_engine(pipeline))
    create_markdown_artifact(
        markdown=gates_markdown(pipeline, gates), key=f"verify-{pipeline.replace('_', '-')}"
    )
    failed = [g for g in gates if not g.ok]
    if failed:
        names = ", ".join(f"{g.gate} {g.table}" for g in failed)
        msg = f"{len(failed)} gate(s) failed: {names}"
        raise RuntimeError(msg)
    return gates
