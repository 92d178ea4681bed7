"""Subflow: extract one table (seed §4 Phase E). Retried as a whole on failure."""

from __future__ import annotations

from prefect import flow

from dwh.extract import ExtractResult
from tasks.extract import extract_table_task


@flow(name="extract", flow_run_name="extract-{table}", retries=2, retry_delay_seconds=10)
def extract(pipeline: str, table: str) -> ExtractResult:
    return extract_table_task(pipeline, table)
