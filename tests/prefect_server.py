"""A real `prefect server start` and process workers, as Prefect users run them.

The session shares one server (tests/conftest.py `prefect_server`); modules that deploy
start their own process worker on their own pool with `process_worker`. Flow tests run
against a second, lighter one (`harness`), like `prefect_test_harness`'s.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from devstack.processes import free_port
from dwh.core.settings import PROJECT_DIR
from tests.waiting import wait_for

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
PREFECT = str(Path(sys.executable).parent / "prefect")
PREFECT_YAML = PROJECT_DIR / "prefect.yaml"


def engine_command() -> str:
    """How prefect.yaml's pools start a flow run (`definitions.engine_command`).

    Test pools carry it too, so flow runs start on a test worker as they do in a
    container: the engine at once, no CLI and workspace supervisor in front of it.
    """
    import yaml  # noqa: PLC0415

    return str(yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))["definitions"]["engine_command"])


@contextmanager
def harness(database_url: str, startup_timeout: int = 60) -> Iterator[str]:
    """`prefect_test_harness`, with the server's database in PostgreSQL instead of SQLite.

    The stock harness pins a SQLite file. With two process workers polling (the fan-out
    tests), SQLite's one writer deadlocks the server's work-queue bookkeeping until its
    60 s busy timeout, and flows' API calls fail with 503 "database is locked"
    (PrefectHQ/prefect#23051, #22967 fixed only the deployments' half). Production
    servers run on PostgreSQL; so does this one. Yields the API URL.
    """
    from prefect.context import _temporary_global_settings_context, get_settings_context  # noqa: PLC0415
    from prefect.events.worker import EventsWorker  # noqa: PLC0415
    from prefect.logging.handlers import APILogWorker  # noqa: PLC0415
    from prefect.server.api.server import SubprocessASGIServer  # noqa: PLC0415
    from prefect.settings import (  # noqa: PLC0415
        PREFECT_API_URL,
        PREFECT_SERVER_DATABASE_CONNECTION_URL,
        temporary_settings,
    )

    # The server subprocess takes its settings from this context, the URL included.
    with temporary_settings(updates={PREFECT_SERVER_DATABASE_CONNECTION_URL: database_url}):
        server = SubprocessASGIServer(port=free_port())
        # As the stock harness does (private, pinned with prefect<3.9): the default
        # server is this one, and threads Prefect starts without a copy of this context
        # (its lease-renewal service, say) see these settings too. Without both they
        # spawn an ephemeral server of their own and wait on it forever.
        SubprocessASGIServer._instances[None] = server
        server.start(timeout=startup_timeout)
        try:
            with (
                temporary_settings(updates={PREFECT_API_URL: server.api_url}),
                _temporary_global_settings_context(get_settings_context()),
            ):
                yield server.api_url
                # Sent before the server stops, or their last batches fail to connect.
                APILogWorker.drain_all()
                EventsWorker.drain_all()
        finally:
            server.stop()
            SubprocessASGIServer._instances.pop(None, None)


@dataclass
class Server:
    """The session's Prefect server, and how to run the CLIs against it."""

    api_url: str
    env: dict[str, str]  # for subprocesses: this server, a private PREFECT_HOME, no DWH_*

    def run(self, *command: str, extra_env: dict[str, str] | None = None, timeout: float = 180) -> str:
        result = subprocess.run(
            command,
            env={**self.env, **(extra_env or {})},
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(
                f"{' '.join(command[:4])} … exited {result.returncode}:\n{result.stdout[-3000:]}\n"
                f"{result.stderr[-3000:]}"
            )
        return result.stdout

    def client(self) -> SyncPrefectClient:
        from prefect.client.orchestration import SyncPrefectClient  # noqa: PLC0415

        return SyncPrefectClient(self.api_url)

    def state(self, flow_run_id: str) -> str:
        with self.client() as client:
            state = client.read_flow_run(uuid.UUID(flow_run_id)).state
        return state.type.value if state else "NONE"

    def wait_terminal(self, flow_run_id: str, timeout: float = 180) -> str:
        return str(
            wait_for(
                f"flow run {flow_run_id} to finish",
                lambda: (s := self.state(flow_run_id)) in TERMINAL and s,
                timeout,
            )
        )

    def run_deployment(
        self, name: str, *params: str, job_env: dict[str, str] | None, cli: bool = False
    ) -> str:
        """A flow run of deployment NAME with `--param k=v`s and, unless None, `job_env` as its env.

        A run's `env` job variable replaces the deployment's whole `env`, so None (the
        deployment's own, as a schedule runs it) is not the same as `{}` (an empty one).
        `cli` goes through `prefect deployment run`, as an operator would; otherwise the
        same API call is made from here, which spares a CLI start (seconds on 2 cores).
        """
        job_variables = {} if job_env is None else {"env": job_env}
        if not cli:
            with self.client() as client:
                deployment = client.read_deployment_by_name(name)
                flow_run = client.create_flow_run_from_deployment(
                    deployment.id,
                    parameters={k: json.loads(v) for k, v in (p.split("=", 1) for p in params)},
                    job_variables=job_variables,
                )
            return str(flow_run.id)
        command = [PREFECT, "deployment", "run", name]
        for param in params:
            command += ["--param", param]
        if job_env is not None:
            command += ["--job-variable", f"env={json.dumps(job_env)}"]
        output = self.run(*command)
        match = re.search(r"UUID: ([0-9a-f-]{36})", output)
        assert match, f"no flow run id in the output of prefect deployment run:\n{output}"
        return match.group(1)


# Run from a shell's background job (`scripts/test &`, a CI runner's step), the tests and
# every child start with SIGINT ignored. A worker that inherits that cannot be stopped by
# SIGINT: Prefect's handler restores the disposition it found (ignore) and sends itself
# SIGINT again, so its teardown waited out 30 s and killed it. This puts SIGINT back to
# its default, as in a terminal, and execs the worker's command.
_SIGINT_AS_FROM_A_TERMINAL = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


@contextmanager
def process_worker(
    server: Server,
    pool: str,
    *,
    prefect: str,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    limit: int | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """`prefect worker start --pool` until the block ends, stopped with SIGINT like a person would.

    `env` is the worker's whole environment: a process worker hands it, plus the run's
    job variables, to every flow run it starts. Its PATH starts with the directory of
    `prefect`, as the image's does, so the pools' `python -m prefect.engine`
    (prefect.yaml `engine_command`) is the worker's own interpreter. `limit`: the most
    flow runs it runs at once (`--limit`), as a production worker is sized.
    """
    bin_dir = str(Path(prefect).parent)
    if env.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        env = {**env, "PATH": os.pathsep.join(p for p in (bin_dir, env.get("PATH")) if p)}
    command = [sys.executable, "-c", _SIGINT_AS_FROM_A_TERMINAL]
    command += [prefect, "worker", "start", "--pool", pool, "--type", "process"]
    if limit is not None:
        command += ["--limit", str(limit)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env={**env, "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "2"},
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def online() -> bool:
            if process.poll() is not None:
                pytest.fail(f"the worker exited {process.returncode}:\n{log_path.read_text()[-3000:]}")
            with server.client() as client:
                return bool(client.read_workers_for_work_pool(pool))

        wait_for(f"a process worker to register with pool {pool}", online, timeout=90)
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            # Not a failure of the test it ends, but 30 s lost: say so in the summary.
            warnings.warn(f"the process worker on pool {pool} ignored SIGINT for 30 s; killed", stacklevel=1)
