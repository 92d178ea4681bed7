"""Which task failures are worth retrying: the transient ones, never bad data or config.

A refused connection, a dropped socket or an S3 hiccup may pass; a renamed column, a
malformed CSV or an invalid catalog fail the same way every time, and retrying them
only delays the clear error (and the alert) by the retry delays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect import Task, task
from prefect.client.schemas.objects import State, TaskRun

from dwh.core.catalog import CatalogError
from dwh.core.transient import StepError
from dwh.ingest.csv_import import CsvImportError
from dwh.ingest.drift import DriftError
from dwh.ingest.extract import SourceVisibilityError
from dwh.ingest.load import LoadError

DETERMINISTIC: tuple[type[BaseException], ...] = (
    CatalogError,
    CsvImportError,
    DriftError,
    LoadError,
    SourceVisibilityError,
    LookupError,
    ValueError,
)

RETRY_DELAYS: list[float] = [5.0, 30.0]


def transient_only(task: Task[..., object], task_run: TaskRun, state: State[object]) -> bool:  # noqa: ARG001
    """Retry condition for tasks: False for errors that would fail again identically.

    A failed warehouse step (transform, datamart, export) says itself whether its cause
    was the connection or the server (`StepError.transient`).
    """
    error = state.result(raise_on_failure=False)
    if isinstance(error, StepError):
        return error.transient
    return not isinstance(error, DETERMINISTIC)


P = ParamSpec("P")
R = TypeVar("R")


def retrying_task(
    name: str, task_run_name: str, *, persist_result: bool | None = None
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """`@task` with the project's retry policy: transient failures only, after 5 s then 30 s.

    `persist_result=False` for a task whose subflow persists what it returns: its own
    copy (and the cache lookup before it runs) would only cost storage round trips.
    """
    return task(
        name=name,
        task_run_name=task_run_name,
        retries=len(RETRY_DELAYS),
        retry_delay_seconds=RETRY_DELAYS,
        retry_condition_fn=transient_only,
        persist_result=persist_result,
    )
