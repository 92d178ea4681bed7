"""The fan-out mode of `ingest` as it runs in production: chains on a process pool's workers.

`ingest_mode` runs a test in one mode or the other. "fan-out" deploys the `ingest-table`
flow (flows/ingest_table.py) on a process pool of the session's Prefect server and sets
DWH_FAN_OUT, so the test's unchanged `ingest(...)` calls dispatch every table chain as
a flow run on that pool. Its `prefect worker start` processes are the session's: started
at the first dispatch, and stopped before the first test that is not a fan-out one (the
fan-out tests are collected first, `fan_out_first`). Each test's DWH_*/AWS_* environment,
as it is when its chains are dispatched, reaches them through the deployment's job
variables (a process worker lays them over its own environment for each flow run, as a
production pool does), so a test may set up its databases, catalog and failpoints in
its body, as in the default mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from dwh.core.settings import PROJECT_DIR
from tests.prefect_server import Server, engine_command, process_worker
from tests.waiting import wait_for

POOL = "dwh-fan-out-test"
FLOW, DEPLOYMENT = "ingest-table", "ingest-table"
ENTRYPOINT = "flows/ingest_table.py:ingest_table_flow"
WORKERS = 2
# Each worker runs at most this many chains at once (`--limit`), as production workers
# are sized: the fleet's six chains cannot all land on the worker that polls first.
WORKER_LIMIT = 3
PREFECT = str(Path(sys.executable).parent / "prefect")
T = TypeVar("T")


def deploy_ingest_table(pool: str = POOL, env: dict[str, str] | None = None) -> None:
    """The `ingest-table` deployment on a process pool, run from this checkout.

    `env`: the job variables' environment, which a process worker lays over its own for
    each flow run. A production pool passes block names and settings this way; a test
    passes its throwaway databases' URLs.
    """
    from prefect import get_client  # noqa: PLC0415
    from prefect.client.schemas.actions import WorkPoolCreate  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"), overwrite=True)
        client.create_deployment(
            flow_id=client.create_flow_from_name(FLOW),
            name=DEPLOYMENT,
            work_pool_name=pool,
            entrypoint=ENTRYPOINT,
            path=str(PROJECT_DIR),
            pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_DIR)}}],
            job_variables={"env": env or {}, "command": engine_command()},
        )


def harness_server() -> Server:
    """The session's Prefect test server, as workers (subprocesses) reach it."""
    from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

    api_url = PREFECT_API_URL.value()
    assert api_url, "the prefect_harness fixture sets PREFECT_API_URL"
    return Server(api_url, {**os.environ, "PREFECT_API_URL": api_url})


def _polling_since(since: datetime) -> int:
    from prefect import get_client  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        workers = client.read_workers_for_work_pool(POOL)
    return sum(1 for w in workers if w.last_heartbeat_time and w.last_heartbeat_time >= since)


def _engine_env() -> dict[str, str]:
    """What a test set for its engine: databases, storage, catalog, failpoints."""
    return {
        k: v
        for k, v in os.environ.items()
        if k.startswith(("DWH_", "AWS_")) and not k.startswith("DWH_FAN_OUT")
    }


class WorkerPool:
    """The session's WORKERS process workers on POOL, and the deployment their runs start from.

    The workers start once, at the first fan-out dispatch of the session, with no DWH_*
    or AWS_* variables of their own. A test's environment reaches its chains the way a
    production pool's job variables reach a run: the deployment carries it, updated
    whenever the test's DWH_*/AWS_* variables differ from the ones it carries (a test
    sets up its databases, catalog and failpoints in its body, as in the default mode).
    """

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._lock = threading.Lock()
        self._workers: ExitStack | None = None
        self._deployed: dict[str, str] | None = None

    def ready(self) -> None:
        with self._lock:
            if self._workers is None:
                self._start()
            wanted = _engine_env()
            if wanted != self._deployed:
                deploy_ingest_table(env=wanted)
                self._deployed = wanted

    def _start(self) -> None:
        deploy_ingest_table()  # the pool must exist before a worker polls it
        server = harness_server()
        variables = {k: v for k, v in server.env.items() if not k.startswith(("DWH_", "AWS_"))}
        started = datetime.now(UTC)
        workers = ExitStack()
        try:
            for number in range(WORKERS):
                workers.enter_context(
                    process_worker(
                        server,
                        POOL,
                        prefect=PREFECT,
                        env=variables,
                        cwd=PROJECT_DIR,
                        log_path=self._log_dir / f"worker-{number}.log",
                        limit=WORKER_LIMIT,
                    )
                )
            wait_for(f"{WORKERS} workers polling pool {POOL}", lambda: _polling_since(started) >= WORKERS, 90)
        except BaseException:
            workers.close()
            raise
        self._workers = workers

    def forget_env(self) -> None:
        """After a test: the next one deploys its own environment even if it looks the same."""
        with self._lock:
            self._deployed = None

    def stop(self) -> None:
        """Stop the workers; the next fan-out dispatch starts them again."""
        with self._lock:
            if self._workers is not None:
                self._workers.close()
                self._workers = None
                self._deployed = None


_ACTIVE: list[WorkerPool] = []
_STARTED: list[WorkerPool] = []  # the session's pool, once its fixture has made it


def is_fan_out(item: pytest.Item) -> bool:
    """Whether ITEM runs in the fan-out mode (`ingest_mode` parametrized "fan-out")."""
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("ingest_mode") == "fan-out"


def fan_out_first(items: list[pytest.Item]) -> None:
    """Reorder ITEMS in place: the fan-out tests first, each group in its own order.

    The pool's workers poll the server every second while they are up, about 3 s of
    CPU a minute each (theirs and the server's). Run back to back, the fan-out tests
    need them for a few minutes of the session, on the xdist worker that takes the
    head of the collection (`--dist worksteal` hands each worker a contiguous share),
    and `stop_between_fan_out_runs` stops them when the first other test starts.
    First rather than last: these are the longest tests, and work stealing evens out
    the short ones at the end.
    """
    items[:] = sorted(items, key=lambda item: not is_fan_out(item))


def stop_between_fan_out_runs(item: pytest.Item) -> None:
    """Before a test that dispatches nothing to the pool: its workers stopped, if up."""
    if not is_fan_out(item):
        for pool in _STARTED:
            pool.stop()


def workers_ready() -> None:
    """In fan-out mode, the pool ready for the test's current environment.

    Call it before a child process (`dwh run`) dispatches chains: only this process's
    dispatches bring the pool up to date by themselves.
    """
    for pool in _ACTIVE:
        pool.ready()


# How `dwh run` ends when the process running its chain is SIGKILLed: in-process that is
# `dwh run` itself; in fan-out the chain's flow run on its worker dies, and `dwh run`
# reports the table failed.
KILLED_EXIT = {"in-process": -9, "fan-out": 1}


def dwh_run_fleet(
    table: str, *, prefix: tuple[str, ...] = (), extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`dwh run fleet --table <table>` in a child process reporting to the session's Prefect.

    In the fan-out mode its chains run on the pool, made ready for this test first.
    `prefix` wraps the command (e.g. faketime); `extra` adds to its environment.
    """
    from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

    workers_ready()
    return subprocess.run(
        [*prefix, sys.executable, "-m", "dwh", "run", "fleet", "--table", table],
        env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), **(extra or {})},
        cwd=PROJECT_DIR,
        capture_output=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="session")
def fan_out_pool(
    prefect_harness: None,  # noqa: ARG001 - the workers poll the session's server; stopped before it
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerPool]:
    pool = WorkerPool(tmp_path_factory.mktemp("fan-out-workers"))
    _STARTED.append(pool)
    try:
        yield pool
    finally:
        _STARTED.remove(pool)
        pool.stop()


@pytest.fixture(params=["in-process"])
def ingest_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`in-process` (the default) or `fan-out` on the session's WorkerPool."""
    mode = str(request.param)
    if mode == "in-process":
        yield mode
        return
    import flows.ingest  # noqa: PLC0415

    pool: WorkerPool = request.getfixturevalue("fan_out_pool")
    dispatch = flows.ingest._chain_on_pool

    def on_the_pool(pipeline: str, table: str, repair: bool) -> object:
        pool.ready()
        return dispatch(pipeline, table, repair)

    monkeypatch.setattr(flows.ingest, "_chain_on_pool", on_the_pool)
    monkeypatch.setenv("DWH_FAN_OUT", "true")
    monkeypatch.setenv("DWH_FAN_OUT_DEPLOYMENT", f"{FLOW}/{DEPLOYMENT}")
    _ACTIVE.append(pool)
    try:
        yield mode
    finally:
        _ACTIVE.remove(pool)
        pool.forget_env()


def both_modes(test: T) -> T:
    """Run `test` (its body unchanged) in the default mode and again in fan-out mode."""
    test = pytest.mark.usefixtures("ingest_mode")(test)
    return pytest.mark.parametrize("ingest_mode", ["in-process", "fan-out"], indirect=True)(test)


def each_mode_and_storage(test: T) -> T:
    """Run `test` on both storages in the default mode, and on S3 in the fan-out mode.

    The chains' workers may sit on other machines: they share object storage, never a
    local folder.
    """
    test = pytest.mark.usefixtures("ingest_mode")(test)
    combinations = [("in-process", "file"), ("in-process", "s3"), ("fan-out", "s3")]
    return pytest.mark.parametrize(("ingest_mode", "storage_kind"), combinations, indirect=True)(test)
