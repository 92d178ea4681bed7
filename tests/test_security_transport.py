"""Security baseline (seed §12), transport: verify-full TLS against a test CA, and an authenticated
Prefect API (anonymous calls refused, workers with the auth string run flows).

docs/security.md lists every claim with its test.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

import devstack
from flows.ingest import ingest
from tests.conftest import Stack, rows_loaded, seed_fleet
from tests.outages import split_env
from tests.tls import Certificates, server_certificates

pytestmark = pytest.mark.usefixtures("prefect_harness")


# --- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(private_stack: Stack) -> Iterator[Certificates]:
    """The private cluster serving a certificate for 127.0.0.1 signed by a CA made here."""
    folder = private_stack.state_dir / "tls"
    folder.mkdir(exist_ok=True)
    certificates = server_certificates(folder)
    for path in (folder, *folder.iterdir()):
        shutil.chown(path, devstack.DB_OS_USER, devstack.DB_OS_USER)
    certificates.key.chmod(0o600)
    admin = private_stack.admin_conninfo("postgres")

    def configure(statements: list[str]) -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)
            conn.execute("SELECT pg_reload_conf()")

    configure(
        [
            f"ALTER SYSTEM SET ssl_cert_file = '{certificates.cert}'",
            f"ALTER SYSTEM SET ssl_key_file = '{certificates.key}'",
            "ALTER SYSTEM SET ssl = on",
        ]
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(admin, sslmode="require").close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        yield certificates
    finally:
        configure(
            ["ALTER SYSTEM RESET ssl", "ALTER SYSTEM RESET ssl_cert_file", "ALTER SYSTEM RESET ssl_key_file"]
        )


def test_verify_full_tls_with_a_test_ca_runs_the_pipeline_and_refuses_impostors(
    private_stack: Stack, tls: Certificates, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = f"file://{tmp_path / 'storage'}"
    query = f"sslrootcert={tls.ca}"
    with split_env(
        monkeypatch, storage, source=private_stack, warehouse=private_stack, url_query=query
    ) as env:
        monkeypatch.setenv("DWH_SOURCE_SSLMODE", "verify-full")
        monkeypatch.setenv("DWH_WAREHOUSE_SSLMODE", "verify-full")
        env.migrate()
        counts = seed_fleet(1000)

        summary = ingest("fleet", tables=["trips"])

        assert rows_loaded(summary) == {"trips": counts["trips"]}
        engine = env.engine()
        for conninfo in (engine.source_conninfo, engine.warehouse_conninfo):
            params = psycopg.conninfo.conninfo_to_dict(conninfo)
            assert (params["sslmode"], params["sslrootcert"]) == ("verify-full", str(tls.ca))
            with psycopg.connect(conninfo) as conn:
                assert conn.execute(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                ).fetchone() == (True,)

        impostor = psycopg.conninfo.make_conninfo(engine.warehouse_conninfo, sslrootcert=str(tls.other_ca))
        with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
            psycopg.connect(impostor).close()
        wrong_name = psycopg.conninfo.make_conninfo(engine.warehouse_conninfo, host="localhost")
        with pytest.raises(psycopg.OperationalError, match='does not match host name "localhost"'):
            psycopg.connect(wrong_name).close()


# --- Prefect API authentication --------------------------------------------------------------


@dataclass(frozen=True)
class AuthedServer:
    api_url: str
    auth_string: str
    home: Path


@pytest.fixture(scope="module")
def authed_prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthedServer]:
    """A Prefect server started as docs/security.md says: PREFECT_SERVER_API_AUTH_STRING set."""
    home = tmp_path_factory.mktemp("prefect-auth")
    auth = f"dwh:{secrets.token_urlsafe(18)}"
    port = devstack.free_port()
    variables = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    variables |= {
        "PREFECT_HOME": str(home / "server"),
        "PREFECT_SERVER_API_AUTH_STRING": auth,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [
            str(devstack.venv_script("prefect")),
            "server",
            "start",
            "--host",
            devstack.HOST,
            "--port",
            str(port),
        ],
        env=variables,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://{devstack.HOST}:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while devstack.http_status(f"{api}/health") != 200:  # health stays open for probes
            assert server.poll() is None, (home / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Prefect server did not start"
            time.sleep(0.5)
        yield AuthedServer(api, auth, home)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _api_status(url: str, auth: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=b"{}", method="POST", headers=headers)  # noqa: S310
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


PROBE_FLOW = """
from prefect import flow


@flow(log_prints=True)
def probe() -> str:
    print("probe ran behind API auth")
    return "ok"
"""

DEPLOY_AND_RUN = """
import sys
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments import run_deployment

with get_client(sync_client=True) as client:
    client.create_work_pool(WorkPoolCreate(name="auth-probe", type="process"), overwrite=True)
flow.from_source(source=sys.argv[1], entrypoint="probe_flow.py:probe").deploy(
    name="probe", work_pool_name="auth-probe", print_next_steps=False
)
print(run_deployment("probe/probe", timeout=0).id)
"""


def test_prefect_api_refuses_anonymous_calls_and_workers_with_the_auth_string_run_flows(
    authed_prefect: AuthedServer,
) -> None:
    flows = f"{authed_prefect.api_url}/flows/filter"
    assert _api_status(flows, None) == 401
    assert _api_status(flows, "dwh:wrong") == 401
    assert _api_status(flows, authed_prefect.auth_string) == 200

    source = authed_prefect.home / "flow"
    source.mkdir()
    (source / "probe_flow.py").write_text(PROBE_FLOW)
    client_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    client_env |= {
        "PREFECT_HOME": str(authed_prefect.home / "client"),
        "PREFECT_API_URL": authed_prefect.api_url,
    }
    with_auth = {**client_env, "PREFECT_API_AUTH_STRING": authed_prefect.auth_string}
    worker = [str(devstack.venv_script("prefect")), "worker", "start", "--pool", "auth-probe", "--run-once"]

    deploy = subprocess.run(
        [sys.executable, "-c", DEPLOY_AND_RUN, str(source)],
        env=with_auth,
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert deploy.returncode == 0, deploy.stderr[-3000:]
    flow_run_id = deploy.stdout.strip().splitlines()[-1]

    anonymous = subprocess.run(
        worker, env=client_env, capture_output=True, text=True, timeout=180, check=False
    )
    assert anonymous.returncode != 0
    assert re.search(r"401\s+Unauthorized", anonymous.stdout + anonymous.stderr)

    authorised = subprocess.run(
        worker, env=with_auth, capture_output=True, text=True, timeout=300, check=False
    )
    assert authorised.returncode == 0, (authorised.stdout + authorised.stderr)[-3000:]
    assert "probe ran behind API auth" in authorised.stdout + authorised.stderr

    # The flow run itself (a child process of the worker) reported back through the auth.
    request = urllib.request.Request(  # noqa: S310
        f"{authed_prefect.api_url}/flow_runs/{flow_run_id}",
        headers={"Authorization": "Basic " + base64.b64encode(authed_prefect.auth_string.encode()).decode()},
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
        assert json.load(response)["state"]["type"] == "COMPLETED"
