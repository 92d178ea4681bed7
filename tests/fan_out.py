"""The fan-out mode of `ingest` as it runs in production: chains on a process pool's workers.

`ingest_mode` runs a test in one mode or the other. "fan-out" deploys the `ingest-table`
flow (flows/ingest_table.py) on a process pool of the session's Prefect server, starts
several `prefect worker start` processes with the test's own DWH_* environment (a
worker hands its environment to every flow run it starts, as a pool's job variables
would) and sets DWH_FAN_OUT, so the test's unchanged `ingest(...)` calls dispatch every
table chain as a flow run on those workers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from dwh.core.settings import PROJECT_DIR
from tests.prefect_server import Server, process_worker
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


def deploy_ingest_table(pool: str = POOL) -> None:
    """The `ingest-table` deployment on a process pool, run from this checkout."""
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


@pytest.fixture(params=["in-process"])
def ingest_mode(
    request: pytest.FixtureRequest,
    env: object,  # noqa: ARG001 - the test's DWH_* environment must be set before the workers start
    prefect_harness: None,  # noqa: ARG001
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[str]:
    """`in-process` (the default) or `fan-out` with WORKERS process workers on POOL."""
    mode = str(request.param)
    if mode == "in-process":
        yield mode
        return
    deploy_ingest_table()
    server = harness_server()
    started = datetime.now(UTC)
    with ExitStack() as workers:
        for number in range(WORKERS):
            workers.enter_context(
                process_worker(
                    server,
                    POOL,
                    prefect=PREFECT,
                    env=server.env,
                    cwd=PROJECT_DIR,
                    log_path=tmp_path / f"worker-{number}.log",
                    limit=WORKER_LIMIT,
                )
            )
        # Workers of earlier tests stay listed: count those that have polled since we started.
        wait_for(f"{WORKERS} workers polling pool {POOL}", lambda: _polling_since(started) >= WORKERS, 90)
        monkeypatch.setenv("DWH_FAN_OUT", "true")
        monkeypatch.setenv("DWH_FAN_OUT_DEPLOYMENT", f"{FLOW}/{DEPLOYMENT}")
        yield mode


def both_modes(test: T) -> T:
    """Run `test` (its body unchanged) in the default mode and again in fan-out mode."""
    test = pytest.mark.usefixtures("ingest_mode")(test)
    return pytest.mark.parametrize("ingest_mode", ["in-process", "fan-out"], indirect=True)(test)
