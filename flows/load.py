"""Subflow: load one table's waiting parts (seed §4 Phase D); idempotent, so its task
retries transient failures."""

from __future__ import annotations

from prefect import flow

from dwh.ingest.load import LoadResult
from tasks.load import load_pending_task


@flow(name="load", flow_run_name="load-{table}")
def load(pipeline: str, table: str) -> list[LoadResult]:
    return load_pending_task(pipeline, table)
