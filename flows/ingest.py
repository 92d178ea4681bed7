"""Parent flow: for each catalog table, recover → extract → load, a few tables at a time.

Reads like the runbook (seed §4 D-E, §11): move watermarks back when asked, then map
the table chain over the selected tables with bounded parallelism, then publish one
summary artifact. All logic lives in `dwh`; the subflows carry the retries.

In fan-out mode each chain is its own flow run of the `ingest-table` deployment
(flows/ingest_table.py) on the work pool, so the tables of one run spread over every
worker; the parent only waits for them. Either way every COPY reading the source holds
a slot of the source database's global concurrency limit (tasks/source_slots.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from contextvars import copy_context
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import psycopg
from prefect import Flow, flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import FlowRun
from prefect.context import TaskRunContext
from prefect.deployments import run_deployment
from prefect.filesystems import WritableFileSystem
from prefect.futures import PrefectFuture
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner

from dwh.core.catalog import TableSpec
from dwh.core.results import saved_result_storage
from dwh.core.settings import RunSettings, StorageSettings
from dwh.ingest.engine import Engine, shared_engine
from dwh.ingest.extract import ExtractResult, record_quiet_window
from dwh.ingest.feed import PartFeed, following
from dwh.ingest.load import LoadResult, recovery_pending
from dwh.ingest.locks import table_lock
from dwh.ingest.reconcile import ReconcileResult
from dwh.ingest.report import IngestFailedError, IngestSummary, TableOutcome, summary_markdown
from dwh.ingest.runlog import RESEED_FROM, RunLog
from dwh.ingest.sessions import reused_sessions, session
from dwh.operations.guard import guarded_engine
from flows.extract import extract
from flows.load import load
from tasks.events import emit_table_held_back, emit_table_loaded
from tasks.reconcile import reconcile_task
from tasks.source_slots import ensure_source_limit
from tasks.tracing import current_flow_run_id

P = ParamSpec("P")
R = TypeVar("R")

# How often a fan-out parent asks the server whether a chain's flow run finished.
_POLL_SECONDS = 2.0


class FanOutError(RuntimeError):
    """A chain's flow run on the work pool ended without a result (crashed or cancelled)."""


def _per_parent_run(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Cache a finished table for the life of its parent run: a retry skips it."""
    return f"ingest-{context.task_run.flow_run_id}-{parameters['pipeline']}-{parameters['table']}"


def _sum_loads(loads: list[LoadResult]) -> tuple[int, int, tuple[str, ...]]:
    return (
        sum(r.rows_loaded for r in loads),
        sum(r.rows_skipped for r in loads),
        tuple(f for r in loads for f in r.moved),
    )


@contextmanager
def subflows_without_heartbeats() -> Iterator[None]:
    """A chain's subflows send no heartbeats of their own; the parent's cover the process.

    Prefect 3.8 gives every flow run a heartbeat thread that sleeps in 1 s steps and
    joins it when the run ends, so each short subflow waited up to a second for it: most
    of what a table with no new data cost. The setting is contextual: the parent run,
    whose heartbeat thread started before, keeps beating. Enter it once around all the
    chains: copying Prefect's settings costs ~70 ms of CPU, once per chain was 10% of a
    quiet run.
    """
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@task(name="ingest-table", task_run_name="ingest-{table}", cache_key_fn=_per_parent_run)
def ingest_table(pipeline: str, table: str, repair: bool = False, fan_out: bool = False) -> TableOutcome:
    """One table's chain: here on a thread, or with `fan_out` as a flow run on the work pool."""
    if fan_out:
        quiet = None if repair else quiet_on_parent(pipeline, table)
        return quiet if quiet is not None else _chain_on_pool(pipeline, table, repair)
    # The block this task persists to, already resolved: a slug would cost each subflow
    # a round trip to the server to load it again.
    storage = TaskRunContext.get().result_store.result_storage  # type: ignore[union-attr]
    return table_chain(pipeline, table, repair, storage)  # type: ignore[arg-type]


def _chain_on_pool(pipeline: str, table: str, repair: bool) -> TableOutcome:
    """Run the chain as a flow run of the ingest-table deployment and return its outcome.

    The child persists its outcome to the same result storage as the parent, so the
    parent reads it back; a failed child re-raises its own error here (its message names
    the table, file and line as in-process), a crashed or cancelled one a FanOutError.
    """
    # In a sync context run_deployment returns the FlowRun itself, never a coroutine.
    flow_run: FlowRun = run_deployment(  # type: ignore[assignment]
        RunSettings().fan_out_deployment,
        parameters={"pipeline": pipeline, "table": table, "repair": repair},
        flow_run_name=f"ingest-{pipeline}-{table}",
        timeout=None,
        poll_interval=_POLL_SECONDS,
        as_subflow=True,
    )
    state = flow_run.state
    if state is not None and state.is_completed():
        outcome: TableOutcome = state.result()
        return outcome
    error: object = None
    if state is not None and state.is_failed():
        # An error that could not be read back still fails the table, with the state's message.
        with suppress(Exception):
            error = state.result(raise_on_failure=False)
    if isinstance(error, BaseException):
        raise error
    kind = state.type.value if state is not None else "no state"
    message = state.message if state is not None else ""
    msg = f"table {pipeline}.{table}: flow run {flow_run.name} ended {kind}: {message}"
    raise FanOutError(msg)


def table_chain(pipeline: str, table: str, repair: bool, storage: WritableFileSystem) -> TableOutcome:
    """Recover leftovers, extract, load; under the table's lock so runs never overlap.

    `storage` is where the chain's subflows persist their results (already loaded).
    """
    started = time.monotonic()
    engine = Engine.for_pipeline(pipeline)  # the parent's, when it lends one
    spec = engine.catalog.table(table)
    with (
        shared_engine(engine),
        # One warehouse session holds the lock and serves the checks made under it.
        session(engine.warehouse_conninfo) as warehouse,
        table_lock(engine, table, warehouse) as acquired,
    ):
        if not acquired:
            get_run_logger().warning("%s: another run holds this table; skipped", table)
            return TableOutcome(table, spec.mode.value, "skipped", error="locked by another run")
        # Nothing in exports/ and no unfinished run: the recovery subflow would find nothing.
        pending = recovery_pending(engine, spec, warehouse)
        recovered = _persisting(load, storage)(pipeline, table) if pending else []
        # Nothing new in a window the probe reads cheaply (an indexed watermark, or a small
        # table): the run is recorded without the two subflows.
        quiet = None if repair else _record_quiet(engine, spec, warehouse)
        if quiet is None:
            extract_table, load_table = _persisting(extract, storage), _persisting(load, storage)
            extracted, loaded = _extract_beside_load(extract_table, load_table, pipeline, table, repair)
        else:
            extracted, loaded = quiet, []
        # Deletes are invisible to a watermark: a catalog opt-in diffs the keys instead.
        reconciled = reconcile_task(pipeline, table) if spec.reconcile_deletes else None
    return _loaded(pipeline, spec, extracted, [*recovered, *loaded], reconciled, started)


def _persisting(subflow: Flow[P, R], storage: WritableFileSystem) -> Flow[P, R]:
    """`subflow` persisting its result to `storage`; made only for a subflow that runs.

    `Flow.with_options` builds a new flow and its parameter schema (pydantic): a fifth
    of a quiet table's chain when both were made up front for every table.
    """
    return subflow.with_options(result_storage=storage, persist_result=True)


def _extract_beside_load(
    extract_table: Flow[..., ExtractResult],
    load_table: Flow[..., list[LoadResult]],
    pipeline: str,
    table: str,
    repair: bool,
) -> tuple[ExtractResult, list[LoadResult]]:
    """The extract and load subflows side by side: each part loads once it is published.

    The load subflow runs on a second thread and follows the extract through a feed
    (dwh/ingest/feed.py), so its COPY begins with the first published part instead of
    after the last. It commits only after the extract uploaded its run; if the extract
    fails, the load finds nothing to follow and the extract's error is the chain's.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dwh-load") as pool:
        with following(PartFeed()):  # closed when the extract returns or raises
            loading = pool.submit(copy_context().run, load_table, pipeline, table)
            extracted = extract_table(pipeline, table, repair)
        return extracted, loading.result()


def quiet_on_parent(pipeline: str, table: str) -> TableOutcome | None:
    """In fan-out mode, record a quiet table from the parent instead of starting a flow run.

    A chain's flow run on the pool costs a process start (seconds) to find nothing new;
    the same probe as the chain's, under the same lock, answers here in milliseconds.
    None sends the table to the pool: something to recover, deletes to reconcile, rows
    in the window, no cheap probe (no index and too big to scan), or the lock held (the
    chain then reports it).
    """
    started = time.monotonic()
    engine = Engine.for_pipeline(pipeline)
    spec = engine.catalog.table(table)
    if not spec.mode.incremental or spec.reconcile_deletes:
        return None
    with (
        session(engine.warehouse_conninfo) as warehouse,
        table_lock(engine, table, warehouse) as acquired,
    ):
        if not acquired or recovery_pending(engine, spec, warehouse):
            return None
        quiet = _record_quiet(engine, spec, warehouse)
    return None if quiet is None else _loaded(pipeline, spec, quiet, [], None, started)


def _record_quiet(
    engine: Engine, spec: TableSpec, warehouse: psycopg.Connection[Any]
) -> ExtractResult | None:
    """`record_quiet_window` for this flow run, logged when it records the run."""
    quiet = record_quiet_window(engine, spec, warehouse, flow_run_id=current_flow_run_id())
    if quiet is not None:
        get_run_logger().info(
            "%s: nothing new up to %s; run %s recorded without extract and load",
            spec.name,
            quiet.upper,
            quiet.run_id,
        )
    return quiet


def _loaded(  # noqa: PLR0917  (the parts of one outcome)
    pipeline: str,
    spec: TableSpec,
    extracted: ExtractResult,
    loads: list[LoadResult],
    reconciled: ReconcileResult | None,
    started: float,
) -> TableOutcome:
    """A loaded table's outcome; emits `dwh.table.loaded` (and held-back past the limit)."""
    table = spec.name
    rows_loaded, rows_skipped, files = _sum_loads(loads)
    emit_table_loaded(pipeline, table, rows_loaded, extracted.upper)
    held_back = None
    if extracted.holdback_seconds > RunSettings().max_holdback_minutes * 60:
        held_back = (
            f"upper bound {extracted.holdback_seconds / 60:,.1f} min behind the source clock, "
            f"held by {extracted.held_by or 'an open source transaction'}"
        )
        get_run_logger().warning("%s: %s", table, held_back)
        emit_table_held_back(pipeline, table, extracted.holdback_seconds, extracted.held_by)
    return TableOutcome(
        table=table,
        mode=spec.mode.value,
        status="loaded",
        rows_extracted=extracted.rows,
        rows_loaded=rows_loaded,
        rows_skipped=rows_skipped,
        seconds=time.monotonic() - started,
        files=files,
        held_back=held_back,
        rows_deleted=reconciled.marked_deleted if reconciled else 0,
    )


def _outcomes(selected: list[TableSpec], futures: Iterable[PrefectFuture[Any]]) -> list[TableOutcome]:
    """Each table's outcome in catalog order; a chain that raised is a failed outcome."""
    outcomes = []
    for spec, future in zip(selected, futures, strict=True):
        future.wait()
        if future.state.is_completed():
            outcomes.append(future.result())
        else:
            error = future.result(raise_on_failure=False)
            outcomes.append(TableOutcome(spec.name, spec.mode.value, "failed", error=str(error)))
    return outcomes


@task(name="rewind-watermarks")
def rewind_watermarks(pipeline: str, tables: list[str], to: datetime) -> None:
    """Backfill/reseed (seed §11): next extract re-reads from `to`; ON CONFLICT dedups."""
    engine = Engine.from_settings(pipeline)
    with psycopg.connect(engine.warehouse_conninfo, autocommit=True) as conn:
        runlog = RunLog(conn, engine.catalog, engine.sql_dir)
        for table in tables:
            runlog.rewind(table, to)


@flow(
    name="ingest",
    flow_run_name="ingest-{pipeline}",
    task_runner=ThreadPoolTaskRunner[TableOutcome](max_workers=RunSettings().max_parallel_tables),  # type: ignore[arg-type]
)
def ingest(  # noqa: PLR0917  (flow parameters, passed by name from deployments)
    pipeline: str,
    tables: list[str] | None = None,
    full_refresh: bool = False,
    backfill_from: datetime | None = None,
    repair: bool = False,
    fan_out: bool | None = None,
) -> IngestSummary:
    """Move the pipeline's tables extract → object storage → idempotent load.

    `repair` re-extracts from `backfill_from` (default: all history) and overwrites the
    rows bronze already has (DO UPDATE), so a fixed catalog expression reaches rows that
    were loaded wrong; a plain backfill or reseed would skip them as duplicates.
    `fan_out` (default `DWH_FAN_OUT`) runs each table's chain as a flow run of the
    `ingest-table` deployment on the work pool instead of on a thread here.
    """
    engine = guarded_engine(pipeline)  # never as a superuser or with rights beyond the pipeline's
    ensure_source_limit(engine)
    run = RunSettings()
    fan_out = run.fan_out if fan_out is None else fan_out
    selected = engine.catalog.select(tables)
    incremental = [t.name for t in selected if t.mode.incremental]
    rewind_to = RESEED_FROM if full_refresh or (repair and backfill_from is None) else backfill_from
    if rewind_to is not None and incremental:
        rewind_watermarks(pipeline, incremental, rewind_to)

    storage = saved_result_storage(StorageSettings())
    chain = ingest_table.with_options(result_storage=storage, persist_result=True)
    names = [t.name for t in selected]
    if fan_out:
        # The parent's threads probe quiet tables and otherwise wait on flow runs: as
        # many as the pool may run at once. They borrow the parent's engine.
        parameters: dict[str, Any] = {"pipeline": unmapped(pipeline), "table": names}
        parameters |= {"repair": unmapped(repair), "fan_out": unmapped(fan_out)}
        with (
            shared_engine(engine),
            reused_sessions(),
            ThreadPoolTaskRunner[TableOutcome](max_workers=run.fan_out_tables) as runner,
        ):
            outcomes = _outcomes(selected, runner.map(chain, parameters))
    else:
        # The chains' threads copy this context when mapped: one engine, one settings
        # copy and one set of reused sessions for all of them.
        with shared_engine(engine), reused_sessions(), subflows_without_heartbeats():
            outcomes = _outcomes(selected, chain.map(unmapped(pipeline), names, unmapped(repair)))

    summary = IngestSummary(pipeline, tuple(outcomes))
    create_markdown_artifact(
        markdown=summary_markdown(summary),
        key=f"ingest-{pipeline.replace('_', '-')}",
        description=f"per-table summary of ingest {pipeline}",
    )
    if summary.failed:
        raise IngestFailedError(summary)
    return summary
