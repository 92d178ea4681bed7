"""The Prefect global concurrency limit that caps the COPY streams reading one source database.

A thread pool bounds the chains of one parent run; nothing bounded the sum over runs,
deployments and, in fan-out mode, workers. Every extract's COPY (each key range of a
split table too) holds one slot of the source database's limit, so the OLTP never serves
more than `DWH_SOURCE_EXTRACTS` of them at once, however many workers the pool has.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, suppress

from prefect import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists

from dwh.core.settings import RunSettings, source_limit_name
from dwh.ingest.engine import Engine


def ensure_source_limit(engine: Engine) -> str:
    """Create the source's limit, or set its size to `DWH_SOURCE_EXTRACTS`; return its name.

    The setting is the declared size: a run brings the server's limit back to it, as
    the result-storage block is saved again on every run.
    """
    name = source_limit_name(engine.source_conninfo)
    # Another run may create it between our read and our create: same size, fine.
    with get_client(sync_client=True) as client, suppress(ObjectAlreadyExists):
        client.upsert_global_concurrency_limit_by_name(name, RunSettings().source_extracts)
    return name


def source_slot(name: str) -> Callable[[], AbstractContextManager[object]]:
    """A slot of the limit per COPY; strict: a missing limit fails loud instead of not limiting."""
    return lambda: concurrency(name, occupy=1, strict=True)
