"""Subflow: extract one table (seed §4 Phase E); its task retries transient failures."""

from __future__ import annotations

from prefect import flow

from dwh.ingest.extract import ExtractResult
from tasks.extract import extract_table_task


@flow(name="extract", flow_run_name="extract-{table}")
def extract(pipeline: str, table: str, repair: bool = False) -> ExtractResult:
    return extract_table_task(pipeline, table, repair)
