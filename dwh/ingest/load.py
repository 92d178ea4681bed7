"""Load one extract run into bronze in one transaction, then move its parts.

Rows, watermark and run log commit together or not at all (seed §5.4); only after the
commit are the parts copied to processed/ and removed from exports/ (seed §4 Phase D
step 8), so a crash anywhere leaves either nothing committed (the parts wait in
exports/ and load next run) or everything committed (the next run only moves them).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import IO, Any

import psycopg
from psycopg import sql

from dwh.core.catalog import Mode, TableSpec
from dwh.core.faults import failpoint
from dwh.core.schedule import load_due
from dwh.core.sqlfiles import engine_sql
from dwh.ingest.engine import Engine, ProgressFn, Throttle, no_progress
from dwh.ingest.extract import bronze_columns
from dwh.ingest.feed import FeedAbandonedError, FollowedKeys, PartFeed
from dwh.ingest.parts import exports_prefix, parse_part, processed_prefix, rejected_prefix
from dwh.ingest.runlog import RunLog, RunRow
from dwh.ingest.storage import Location, S3Storage, Storage, read_ahead

log = logging.getLogger(__name__)

_READ_CHUNK = 1 << 20
# Parts of one run moved at once: within botocore's 10 pooled connections per client.
_PARALLEL_MOVES = 4


def _chunks(storage: Storage, handle: IO[bytes]) -> AbstractContextManager[Iterator[bytes]]:
    """A part's bytes for COPY: read ahead on a thread from S3, whose GET waits on the
    network; read in line from a local file, which is read faster than COPY takes it."""
    if isinstance(storage, S3Storage):
        return read_ahead(handle, _READ_CHUNK)
    return nullcontext(iter(partial(handle.read, _READ_CHUNK), b""))


class LoadError(RuntimeError):
    """A part could not be loaded; the message names table, file, line and column."""


@dataclass(frozen=True)
class LoadResult:
    table: str
    run_id: int
    rows_loaded: int
    rows_skipped: int
    parts: int
    size: int
    seconds: float
    moved: tuple[str, ...]


def run_parts(location: Location, pipeline: str, table: str) -> dict[int, list[str]]:
    """Keys of the parts waiting in exports/, grouped by run id, in part order.

    Anything else under the table's exports/ folder is somebody else's (an S3 console's
    folder marker `<table>/`, a `.keep`, a stray upload, a file in a sub-folder): it is
    never a part, so it is left where it is with one warning naming it, and it never
    blocks the table, fails verify or breaks health.
    """
    prefix = exports_prefix(location, pipeline, table)
    grouped: dict[int, list[tuple[int, str]]] = {}
    strays: list[str] = []
    for key in location.storage.list(prefix):
        folder, _, filename = key.rpartition("/")
        name = parse_part(filename) if folder == prefix else None
        if name is None:
            strays.append(key)
            continue
        grouped.setdefault(name.run_id, []).append((name.part, key))
    if strays:
        log.warning(
            "table %s.%s: ignoring %d file(s) in exports/ that are not parts "
            "(<YYYYMMDD_HHMM>_<TZ>_<run_id>_<part>.csv): %s",
            pipeline,
            table,
            len(strays),
            ", ".join(location.storage.url(k) for k in strays),
        )
    return {run: [k for _, k in sorted(parts)] for run, parts in sorted(grouped.items())}


# PostgreSQL ends a message with the offending value as `: "<value>"` (bad input syntax,
# the COPY context's `column c: "<value>"` or `line n: "<whole line>"`).
_QUOTED_VALUE = re.compile(r':\s*"(?:[^"]|"")*"?\s*$')


def without_values(text: str) -> str:
    """A server message with the row value it quotes cut off: the rest names what failed."""
    return _QUOTED_VALUE.sub("", text.strip())


def _describe_copy_error(exc: psycopg.Error, where: str, url: str) -> str:
    """Table, file, line and column, never the value: the message reaches logs, the run log
    (`v_recent_failures`, readable by the ro role) and notifications, and a row may hold
    personal data or a secret. The server's detail line is dropped for the same reason
    ("Failing row contains (…)", "Key (…)=(…)")."""
    diag = exc.diag
    context = f" ({without_values(diag.context.splitlines()[0])})" if diag.context else ""
    primary = without_values(diag.message_primary or str(exc).splitlines()[0])
    return f"{where}: loading {url} failed: {primary}{context}"


class _Loader:
    """The statements of one load transaction, for one table."""

    def __init__(self, engine: Engine, table: TableSpec, conn: psycopg.Connection[Any]) -> None:
        self.engine = engine
        self.table = table
        self.conn = conn
        self.columns = bronze_columns(conn, engine.catalog, table, engine.sql_dir)
        self.target = sql.Identifier(engine.catalog.bronze_schema, table.name)
        self.column_list = sql.SQL(", ").join(map(sql.Identifier, self.columns))
        self.where = f"table {engine.catalog.pipeline}.{table.name}"
        self.size = 0

    def q(self, name: str, **parts: sql.Composable) -> sql.Composed:
        defaults: dict[str, sql.Composable] = {"target": self.target, "columns": self.column_list}
        return engine_sql(self.engine.sql_dir, name, self.engine.catalog, **{**defaults, **parts})

    def copy_parts(self, into: sql.Composable, keys: Iterable[str], report: Throttle) -> int:
        """COPY every part into `into`, streaming bytes from storage; returns rows."""
        rows = 0
        storage = self.engine.location.storage
        for key in keys:
            with self.conn.cursor() as cur:
                try:
                    with (
                        cur.copy(self.q("load_copy", target=into)) as copy,
                        storage.open_read(key) as handle,
                        _chunks(storage, handle) as chunks,
                    ):
                        for chunk in chunks:
                            copy.write(chunk)
                            self.size += len(chunk)
                            report(rows, self.size)
                except psycopg.Error as exc:
                    raise LoadError(_describe_copy_error(exc, self.where, storage.url(key))) from exc
                rows += max(cur.rowcount, 0)
        return rows

    def stage(self, keys: Iterable[str], report: Throttle) -> tuple[sql.Identifier, int]:
        stage = sql.Identifier(f"stage_{self.table.name}")
        self.conn.execute(self.q("load_stage", stage=stage))
        return stage, self.copy_parts(stage, keys, report)

    def snapshot(self, keys: Iterable[str], report: Throttle) -> tuple[int, int]:
        # TRUNCATE + COPY in one transaction: readers see the old or the new table.
        self.conn.execute(self.q("truncate"))
        return self.copy_parts(self.target, keys, report), 0

    def append(self, keys: Iterable[str], report: Throttle) -> tuple[int, int]:
        empty = self.conn.execute(self.q("table_is_empty")).fetchone()
        if empty and empty[0]:
            # Empty target: COPY straight in, no staging pass. A duplicate key inside
            # the parts rolls back to the savepoint and takes the staged path instead.
            try:
                with self.conn.transaction():
                    return self.copy_parts(self.target, keys, report), 0
            except LoadError as exc:
                if not isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                    raise
                self.size = 0
        stage, staged = self.stage(keys, report)
        key = sql.SQL(", ").join(map(sql.Identifier, self.table.key))
        inserted = self.conn.execute(self.q("load_append", stage=stage, key=key)).rowcount
        return inserted, staged - inserted

    def merge(self, keys: Iterable[str], report: Throttle) -> tuple[int, int]:
        stage, staged = self.stage(keys, report)
        values = [c for c in self.columns if c not in self.table.key]
        assignments: list[sql.Composable] = [
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in values
        ]
        assignments.append(sql.SQL("_dwh_loaded_at = now()"))
        row = self.conn.execute(
            self.q(
                "load_merge",
                stage=stage,
                key=sql.SQL(", ").join(map(sql.Identifier, self.table.key)),
                assignments=sql.SQL(", ").join(assignments),
                current=sql.SQL(", ").join(sql.Identifier("t", c) for c in values),
                excluded=sql.SQL(", ").join(sql.Identifier("excluded", c) for c in values),
            )
        ).fetchone()
        inserted, updated = (int(row[0]), int(row[1])) if row else (0, 0)
        return inserted + updated, staged - inserted - updated


def load_run(
    engine: Engine,
    table: TableSpec,
    run: RunRow,
    keys: list[str],
    *,
    progress: ProgressFn = no_progress,
) -> LoadResult:
    """Load one run's parts; mark it loaded and advance the watermark in the same commit."""
    _check_parts(engine, run, keys)
    return _load(engine, table, (run.run_id, run.repair), _Parts(keys, lambda _: (run, keys)), progress)


def _settled() -> None:
    """A finished extract's run: its failure can be recorded at once."""


@dataclass(frozen=True)
class _Parts:
    """What one load COPYs, and how it learns the run's final facts.

    `finished` (called on the load's connection once every key was copied) returns
    the run as the extract recorded it and all its keys; `settle` returns once a
    failure may be recorded on the run; `waits` says the COPY waits for parts still
    being written, which leaves the session idle in its transaction meanwhile.
    """

    keys: Iterable[str]
    finished: Callable[[psycopg.Connection[Any]], tuple[RunRow, list[str]]]
    settle: Callable[[], None] = _settled
    waits: bool = False


def load_followed(  # noqa: PLR0917
    engine: Engine,
    table: TableSpec,
    feed: PartFeed,
    run_id: int,
    repair: bool,
    progress: ProgressFn = no_progress,
) -> LoadResult:
    """Load a run while its extract is still writing it: each part is copied once published.

    Only the COPY overlaps the extract; the checks, the run log and the commit wait for
    the run to be uploaded. A snapshot waits for it before its TRUNCATE, which would
    otherwise lock readers out of bronze for the whole extract. Raises
    FeedAbandonedError (nothing committed) when the extract fails.
    """
    keys = FollowedKeys(feed, run_id)

    def finished(conn: psycopg.Connection[Any]) -> tuple[RunRow, list[str]]:
        every = list(keys)  # returns at once: the COPY read to the end, so the run is uploaded
        runs = RunLog(conn, engine.catalog, engine.sql_dir).runs(table.name, [run_id])
        uploaded = next((r for r in runs if r.run_id == run_id and r.extract_finished), None)
        if uploaded is None:
            msg = (
                f"table {engine.catalog.pipeline}.{table.name}: run {run_id} is not uploaded in extract_runs"
            )
            raise LoadError(msg)
        _check_parts(engine, uploaded, every)
        return uploaded, every

    def settle() -> None:
        # A load that failed records it on the run once the run is uploaded (the extract
        # would overwrite it otherwise); if the extract failed too, its error is the run's.
        feed.wait_uploaded(run_id)

    if table.mode is Mode.SNAPSHOT:
        parts = _Parts(feed.wait_uploaded(run_id), finished, settle)
    else:
        parts = _Parts(keys, finished, settle, waits=True)
    return _load(engine, table, (run_id, repair), parts, progress)


def _check_parts(engine: Engine, run: RunRow, keys: list[str]) -> None:
    if run.parts is not None and len(keys) != run.parts:
        msg = (
            f"table {engine.catalog.pipeline}.{run.table_name}: run {run.run_id} wrote {run.parts} "
            f"part(s) but {len(keys)} are in exports/; refusing a partial load"
        )
        raise LoadError(msg)


def _load(
    engine: Engine, table: TableSpec, run: tuple[int, bool], source: _Parts, progress: ProgressFn
) -> LoadResult:
    """The load transaction of run `(run_id, repair)`: COPY the parts, check, record, commit, move.

    A failure is recorded on the run once `source.settle` returns; an abandoned
    followed run's is not (its extract recorded its own).
    """
    where = f"table {engine.catalog.pipeline}.{table.name}"
    (run_id, repair), started = run, time.monotonic()
    report = Throttle(progress, table.name, "load")
    with psycopg.connect(engine.warehouse_conninfo) as conn:
        if source.waits:
            # Idle in its transaction between parts by design: a warehouse-wide limit for
            # leaky clients must not end it (our own session, so a plain SET may lift it).
            conn.execute("SET idle_in_transaction_session_timeout = 0")
            conn.commit()
        runlog = RunLog(conn, engine.catalog, engine.sql_dir)
        try:
            with conn.transaction():
                loader = _Loader(engine, table, conn)
                step = {Mode.SNAPSHOT: loader.snapshot, Mode.APPEND: loader.append, Mode.MERGE: loader.merge}[
                    table.mode
                ]
                if repair and table.mode is Mode.APPEND:
                    # A repair overwrites what bronze holds (DO UPDATE): with DO NOTHING
                    # every row loaded wrong would be "skipped" and stay wrong.
                    step = loader.merge
                loaded, skipped = step(source.keys, report)
                extracted, parts = source.finished(conn)
                _check_rows_read(engine, where, extracted, parts, loaded + skipped)
                due = load_due(engine.catalog, table, datetime.now(UTC))
                runlog.loaded(run_id, rows_loaded=loaded, rows_skipped=skipped, due_at=due.by)
                failpoint("load.before_commit")
        except FeedAbandonedError:
            raise
        except Exception as exc:
            source.settle()
            record_failure(runlog, run_id, str(exc))
            raise
        report(loaded, loader.size, done=True)
    failpoint("load.after_commit")
    moved = move_parts(engine, table, parts, processed_prefix)
    return LoadResult(
        table=table.name,
        run_id=run_id,
        rows_loaded=loaded,
        rows_skipped=skipped,
        parts=len(parts),
        size=loader.size,
        seconds=time.monotonic() - started,
        moved=tuple(moved),
    )


def _check_rows_read(engine: Engine, where: str, run: RunRow, keys: list[str], rows: int) -> None:
    """A part cut at a row boundary still parses: only the count the extract wrote shows it."""
    if run.rows_extracted is not None and rows != run.rows_extracted:
        files = ", ".join(engine.location.storage.url(k) for k in keys)
        msg = (
            f"{where}: run {run.run_id} extracted {run.rows_extracted} rows but its parts hold "
            f"{rows} (a part truncated or edited?); nothing committed: {files}"
        )
        raise LoadError(msg)


def record_failure(runlog: RunLog, run_id: int, error: str) -> None:
    """Best effort: when the warehouse itself is down the run row cannot be updated."""
    try:
        runlog.failed(run_id, error)
    except psycopg.Error as exc:
        log.warning("could not record failure of run %s: %s", run_id, exc)


def move_parts(engine: Engine, table: TableSpec, keys: list[str], to: Any) -> list[str]:  # noqa: ANN401
    """Copy-confirm-delete each part from exports/ into the folder `to(...)` names.

    The parts move side by side: each move is a server-side copy the run waits for
    after its commit, and every part is moved on its own (a crash leaves each one in
    exports/, in the target, or in both, which the next run's recovery finishes).
    """
    target = to(engine.location, engine.catalog.pipeline, table.name)
    destinations = [f"{target}/{key.rsplit('/', 1)[-1]}" for key in keys]
    workers = max(1, min(len(keys), _PARALLEL_MOVES))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dwh-move") as pool:
        for _ in pool.map(engine.location.storage.move, keys, destinations):
            pass  # re-raises the first failed move, after the others finished
    return destinations


def reject_parts(engine: Engine, table: TableSpec, keys: list[str]) -> list[str]:
    """Parts of an extract that never finished: out of exports/, kept in rejected/."""
    return move_parts(engine, table, keys, rejected_prefix)


def recovery_pending(engine: Engine, table: TableSpec, conn: psycopg.Connection[Any]) -> bool:
    """Whether `load_pending` would find anything: parts in exports/ or a run left unfinished.

    One listing and one query on `conn` (the warehouse), so a chain with nothing to
    recover skips the recovery subflow (and its Prefect round trips) altogether; call it
    with the table lock held.
    """
    if run_parts(engine.location, engine.catalog.pipeline, table.name):
        return True
    return bool(RunLog(conn, engine.catalog, engine.sql_dir).runs(table.name, []))


def load_pending(engine: Engine, table: TableSpec, *, progress: ProgressFn = no_progress) -> list[LoadResult]:
    """Load every finished run waiting in exports/, oldest first (recovery, seed §11).

    Call it with the table lock held. A run already 'loaded' (crash between commit and
    move) is only moved; a run whose extract never finished (the process died) is
    marked failed and its parts go to rejected/; the first run that fails to load
    stops the table, so runs never load out of order.
    """
    where = f"table {engine.catalog.pipeline}.{table.name}"
    waiting = run_parts(engine.location, engine.catalog.pipeline, table.name)
    with psycopg.connect(engine.warehouse_conninfo, autocommit=True) as conn:
        runlog = RunLog(conn, engine.catalog, engine.sql_dir)
        runs = runlog.runs(table.name, list(waiting))
        orphans = sorted(set(waiting) - {r.run_id for r in runs})
        if orphans:
            files = ", ".join(engine.location.storage.url(k) for r in orphans for k in waiting[r])
            msg = f"{where}: parts in exports/ belong to no run in extract_runs: {files}"
            raise LoadError(msg)
        results: list[LoadResult] = []
        for run in runs:
            keys = waiting.get(run.run_id, [])
            if run.status == "loaded":
                moved = move_parts(engine, table, keys, processed_prefix)
                results.append(LoadResult(table.name, run.run_id, 0, 0, len(keys), 0, 0.0, tuple(moved)))
            elif run.extract_finished:
                results.append(load_run(engine, table, run, keys, progress=progress))
            else:
                # A run whose extract failed already says why; one left 'extracting' died.
                if run.status != "failed":
                    reason = "abandoned: its extract never finished (process killed?)"
                    runlog.failed(run.run_id, f"{where}: run {run.run_id} {reason}; parts moved to rejected/")
                reject_parts(engine, table, keys)
    return results


def load_following(
    engine: Engine, table: TableSpec, feed: PartFeed, *, progress: ProgressFn = no_progress
) -> list[LoadResult]:
    """Load the run the extract beside this load is writing (dwh/ingest/feed.py).

    Follows the extract's newest run: when an attempt fails, what was copied of it rolls
    back and the load follows the retry's run. The parts a failed attempt left in
    exports/ are then dealt with as a load after the extract would have: its run is
    failed, so its parts go to rejected/. Nothing to follow (the extract failed for
    good): nothing is loaded, as when the chain stopped at its extract.
    """
    while (current := feed.current_run()) is not None:
        run_id, repair = current
        try:
            result = load_followed(engine, table, feed, run_id, repair, progress)
        except FeedAbandonedError:
            continue
        earlier = load_pending(engine, table, progress=progress) if feed.failed_runs() else []
        return [*earlier, result]
    return []
