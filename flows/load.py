"""Subflow: load one table's waiting parts (seed §4 Phase D). Idempotent, so retried."""

from __future__ import annotations

from prefect import flow

from dwh.load import LoadResult
from tasks.load import load_pending_task


@flow(name="load", flow_run_name="load-{table}", retries=2, retry_delay_seconds=10)
def load(pipeline: str, table: str) -> list[LoadResult]:
    return load_pending_task(pipeline, table)
