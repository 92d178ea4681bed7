"""Production rehearsal: every deployment of prefect.yaml runs once, on a worker, exactly as deployed.

The path a user's flow run takes, as far as this machine allows (docs/first-deployment.md
is the same list for a person):

1. The operator, from their own machine: `dwh migrate` both pipelines, `dwh blocks apply
   --connections` (the connection and storage blocks, from their environment), then
   `prefect deploy --all` with the shipped prefect.yaml. Only the infrastructure is
   swapped (no Docker daemon here): no image build, and a process pool that carries the
   docker pool's own job variables.
2. The worker runs from a replay of the image (tests/image.py) with the Dockerfile's
   `ENV` and a Prefect API URL, nothing else: the flow runs get block names and the
   storage URLs from the job variables, and no database URL, password or key.
3. Object storage is moto's S3 API with IAM enforcement switched on, and the keys the
   blocks hold belong to a user whose only policy is deployments/iam/s3-policy.json.

Every deployment must complete, and the test reads back what each left behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import psycopg
import pytest
import yaml
from botocore.exceptions import ClientError

import devstack
from dwh.analytics.documents import viewer_shard
from dwh.core.catalog import load_catalog
from dwh.core.migrate import migrate
from dwh.core.settings import PROJECT_DIR, WarehouseSettings
from dwh.onboarding.seed import seed_source
from tests.conftest import PIPELINES_DIR, SQL_DIR, Env, app_conninfo
from tests.image import container_env, replay_image
from tests.prefect_server import Server, process_worker
from tests.s3_policy import render_policy
from tests.waiting import wait_for

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [
    pytest.mark.devstack,
    pytest.mark.skipif(
        not (devstack.PG_BIN / "initdb").exists(),
        reason=f"PostgreSQL 15 binaries are not in {devstack.PG_BIN}",
    ),
]

PREFECT_YAML = PROJECT_DIR / "prefect.yaml"
POOL = "dwh-rehearsal"
BUCKET = "acme-dwh"
PREFIX = "dwh"
EXPORT_PREFIX = "public/json"
REGION = "us-east-1"
# The python:3.11-slim base image's own environment, under the Dockerfile's ENV.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_ENV = {"LANG": "C.UTF-8"}
# What a flow run may see of its connections: names and storage URLs, never a secret.
JOB_ENV_KEYS = {
    "DWH_SOURCE_BLOCK",
    "DWH_WAREHOUSE_BLOCK",
    "DWH_STORAGE_CREDENTIALS_BLOCK",
    "DWH_STORAGE_URL",
    "DWH_EXPORT_URL",
}


# --- S3 under the shipped policy -----------------------------------------------------------


@dataclass(frozen=True)
class PolicedS3:
    """A moto server enforcing IAM, and the keys of a user holding only the shipped policy."""

    endpoint: str
    access_key_id: str
    secret_access_key: str

    def client(self) -> S3Client:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=REGION,
        )


@pytest.fixture(scope="module")
def policed_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PolicedS3]:
    """Set up bucket, user and policy while moto still trusts everyone, then switch IAM on.

    moto counts requests and starts authorizing once `reset-auth` sets the count of free
    requests to 0: from then on every call must be signed by an IAM user's key and be
    allowed by that user's policies (actions and resources; moto does not evaluate the
    `s3:prefix` condition of ListBucket).
    """
    port = devstack.free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto-iam") / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for("moto to answer", lambda: devstack.http_status(f"{endpoint}/") is not None, timeout=60)
        setup = {"endpoint_url": endpoint, "region_name": REGION}
        setup |= {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        boto3.client("s3", **setup).create_bucket(Bucket=BUCKET)
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="dwh-flows")
        policy = render_policy(
            bucket=BUCKET, prefix=PREFIX, export_bucket=BUCKET, export_prefix=EXPORT_PREFIX
        )
        iam.put_user_policy(UserName="dwh-flows", PolicyName="dwh-s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="dwh-flows")["AccessKey"]
        # A body werkzeug leaves alone (a form content type would be parsed away).
        request = urllib.request.Request(  # noqa: S310
            f"{endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback moto
            assert response.status == 200
        yield PolicedS3(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _denied(call: Any, **kwargs: Any) -> bool:
    try:
        call(**kwargs)
    except ClientError as exc:
        return exc.response["Error"]["Code"] in {"AccessDenied", "403"}
    return False


def test_the_shipped_policy_denies_what_lies_outside_the_prefixes(policed_s3: PolicedS3) -> None:
    s3 = policed_s3.client()
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/fleet/exports/t/probe.csv", Body=b"x")
    s3.delete_object(Bucket=BUCKET, Key=f"{PREFIX}/fleet/exports/t/probe.csv")
    s3.put_object(Bucket=BUCKET, Key=f"{EXPORT_PREFIX}/osm_notes/probe.json", Body=b"{}")
    s3.delete_object(Bucket=BUCKET, Key=f"{EXPORT_PREFIX}/osm_notes/probe.json")

    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}-backups/fleet/probe.dump", Body=b"x")
    s3.delete_object(Bucket=BUCKET, Key=f"{PREFIX}-backups/fleet/probe.dump")  # retention

    assert _denied(s3.put_object, Bucket=BUCKET, Key="elsewhere/x.csv", Body=b"x"), "write outside"
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/probe/backups/old.dump", Body=b"x")
    assert _denied(s3.delete_object, Bucket=BUCKET, Key=f"{PREFIX}/probe/backups/old.dump"), (
        "backups have their own prefix and statement; the parts' prefix deletes only parts and probes"
    )
    assert _denied(s3.get_object, Bucket=BUCKET, Key="elsewhere/x.csv"), "read outside"
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/fleet/processed/t/part.csv", Body=b"x")
    assert _denied(s3.delete_object, Bucket=BUCKET, Key=f"{PREFIX}/fleet/processed/t/part.csv"), (
        "the audit trail in processed/ is never deleted (seed §5.5)"
    )
    assert _denied(s3.create_bucket, Bucket="another-bucket")
    anonymous = boto3.client(
        "s3",
        endpoint_url=policed_s3.endpoint,
        aws_access_key_id="AKIANOBODY",
        aws_secret_access_key="nobody",  # noqa: S106 - a key IAM does not know
        region_name=REGION,
    )
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        anonymous.put_object(Bucket=BUCKET, Key=f"{PREFIX}/x.csv", Body=b"x")


# --- the rehearsal -------------------------------------------------------------------------


@dataclass
class Outcome:
    deployment: str
    state: str
    seconds: float  # creation to a terminal state, as the operator waits for it
    run_seconds: float | None  # the flow run's own start to end on the worker
    message: str = ""


@dataclass
class Rehearsal:
    server: Server
    env: Env
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, name: str, parameters: dict[str, Any] | None = None, *, cli: bool = False) -> Outcome:
        """One flow run of deployment NAME with no job variable of the run's own, as scheduled."""
        started = time.monotonic()
        if cli:  # as an operator starts a backfill: `prefect deployment run … --param`
            flow_run_id = self.server.run_deployment(
                name, *(f"{k}={json.dumps(v)}" for k, v in (parameters or {}).items()), job_env=None, cli=True
            )
        else:
            with self.server.client() as client:
                deployment = client.read_deployment_by_name(name)
                flow_run_id = str(
                    client.create_flow_run_from_deployment(deployment.id, parameters=parameters or {}).id
                )
        state = self.server.wait_terminal(flow_run_id, timeout=300)
        with self.server.client() as client:
            flow_run = client.read_flow_run(uuid.UUID(flow_run_id))
        run_seconds = (
            (flow_run.end_time - flow_run.start_time).total_seconds()
            if flow_run.start_time and flow_run.end_time
            else None
        )
        message = "" if state == "COMPLETED" else self._logs(flow_run_id)
        outcome = Outcome(name, state, time.monotonic() - started, run_seconds, message)
        with self.lock:
            self.outcomes.append(outcome)
        return outcome

    def chain(self, steps: list[tuple[str, dict[str, Any] | None, bool]]) -> None:
        """Deployments one after another; a failed one does not stop the rest (all are reported)."""
        for name, parameters, cli in steps:
            self.run(name, parameters, cli=cli)

    def _logs(self, flow_run_id: str) -> str:
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId  # noqa: PLC0415

        with self.server.client() as client:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(flow_run_id)])))
        return "\n".join(log.message for log in logs)[-4000:]

    def table(self) -> str:
        rows = [f"{'deployment':<36} {'outcome':<10} {'wall s':>7} {'on worker s':>11}"]
        for o in self.outcomes:
            ran = f"{o.run_seconds:.1f}" if o.run_seconds is not None else "-"
            rows.append(f"{o.deployment:<36} {o.state:<10} {o.seconds:>7.1f} {ran:>11}")
        return "\n".join(rows)


def _rehearsal_prefect_yaml(path: Path, image_root: Path) -> dict[str, str]:
    """The shipped file with only its infrastructure swapped; returns the docker pool's job env."""
    config = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    docker = config["definitions"]["work_pools"]["docker"]["job_variables"]
    job_env = dict(docker["env"])
    del config["build"], config["push"]
    config["pull"] = [{"prefect.deployments.steps.set_working_directory": {"directory": str(image_root)}}]
    for deployment in config["deployments"]:
        deployment["work_pool"] = {
            "name": POOL,
            "job_variables": {"env": job_env, "command": docker["command"]},
        }
        for schedule in deployment.get("schedules") or []:
            schedule["active"] = False
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return job_env


def _keys(s3: S3Client, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def _dumped_by(archive: bytes, workdir: Path) -> str:
    """The pg_dump version a custom-format archive records in its header (`pg_restore -l`)."""
    path = workdir / "backup.dump"
    path.write_bytes(archive)
    listing = subprocess.run(
        [str(devstack.PG_BIN / "pg_restore"), "-l", str(path)], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Dumped by pg_dump version: (\S+)", listing)
    assert match, listing[:2000]
    return match.group(1)


def test_every_deployment_runs_on_a_worker_exactly_as_deployed(  # noqa: PLR0915 - one rehearsal, start to end
    env: Env,
    prefect_server: Server,
    policed_s3: PolicedS3,
    tmp_path: Path,
) -> None:
    server = prefect_server
    storage_url, export_url = f"s3://{BUCKET}/{PREFIX}", f"s3://{BUCKET}/{EXPORT_PREFIX}"

    # 1. The operator's machine: migrations, sample sources, blocks, `prefect deploy --all`.
    for pipeline in ("fleet", "osm_notes"):
        migrate(load_catalog(pipeline, PIPELINES_DIR), WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]
    source = app_conninfo()
    seed_source(source, "fleet", rows=2000, sql_dir=SQL_DIR)
    seed_source(source, "osm_notes", rows=0, sql_dir=SQL_DIR, notes=300)
    operator = {k: v for k, v in os.environ.items() if k.startswith("DWH_") and k != "DWH_STORAGE_URL"}
    operator |= {
        "DWH_STORAGE_URL": storage_url,
        "AWS_ENDPOINT_URL": policed_s3.endpoint,
        "AWS_ACCESS_KEY_ID": policed_s3.access_key_id,
        "AWS_SECRET_ACCESS_KEY": policed_s3.secret_access_key,
        "AWS_DEFAULT_REGION": REGION,
    }
    dwh = str(Path(sys.executable).parent / "dwh")
    applied = server.run(dwh, "blocks", "apply", "--connections", extra_env=operator)
    for slug in (
        "sqlalchemy-connector/dwh-source",
        "sqlalchemy-connector/dwh-warehouse",
        "aws-credentials/dwh-storage",
    ):
        assert slug in applied, applied

    image_root = replay_image(tmp_path / "opt-dwh")
    from prefect.client.schemas.actions import WorkPoolCreate  # noqa: PLC0415

    with server.client() as client:
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process"), overwrite=True)
    prefect_file = tmp_path / "prefect.yaml"
    job_env = _rehearsal_prefect_yaml(prefect_file, image_root)
    assert set(job_env) == JOB_ENV_KEYS, "the docker pool's job variables changed: update the rehearsal"
    prefect = str(Path(sys.executable).parent / "prefect")
    server.run(
        prefect,
        "deploy",
        "--all",
        "--prefect-file",
        str(prefect_file),
        extra_env={"DWH_STORAGE_URL": storage_url, "DWH_EXPORT_URL": export_url},
    )
    with server.client() as client:
        deployed = {d.name: d for d in client.read_deployments()}
    declared = [d["name"] for d in yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))["deployments"]]
    for name in declared:
        resolved = deployed[name].job_variables["env"]
        assert resolved["DWH_STORAGE_URL"] == storage_url, name
        assert resolved["DWH_EXPORT_URL"] == export_url, name

    # 2. The worker: the image's files, its ENV and the API URL; no DWH_*, AWS_* or password.
    spool, home = tmp_path / "spool", tmp_path / "home"
    spool.mkdir()
    home.mkdir()
    worker_env = BASE_ENV | container_env(image_root, spool, BASE_PATH)
    worker_env |= {"HOME": str(home), "PREFECT_API_URL": server.api_url}
    assert not [k for k in worker_env if k.startswith(("DWH_", "AWS_", "PG"))]
    rehearsal = Rehearsal(server, env)
    with process_worker(
        server,
        POOL,
        prefect=str(image_root / ".venv" / "bin" / "prefect"),
        env=worker_env,
        cwd=image_root,
        log_path=tmp_path / "worker.log",
    ):
        # 3. Every deployment once, in the order a first day would bring them; the two
        # pipelines side by side, as their schedules overlap on one worker in production.
        since = (datetime.now(UTC) - timedelta(days=2)).isoformat()
        fleet = [
            ("ingest/fleet", None, False),
            ("ingest/fleet-backfill", {"backfill_from": since, "tables": ["trips"]}, True),
            ("ingest/fleet-reseed", {"tables": ["alarms"]}, True),
            ("ingest/fleet-repair", {"tables": ["trips"]}, True),
            # Fan-out: the parent starts runs of ingest-table on the same worker and waits.
            ("ingest/fleet-fan-out", {"tables": ["trips", "alarms"]}, False),
            ("ingest-table/ingest-table", {"pipeline": "fleet", "table": "devices"}, True),
            ("verify/fleet-verify", None, False),
            ("health/fleet-health", None, False),
            ("backup/fleet-backup", None, False),
            ("maintenance/fleet-maintenance", None, False),
        ]
        osm_notes = [
            (name, None, False)
            for name in (
                "etl/osm-notes-etl",
                "etl/osm-notes-rebuild",
                "export_json/osm-notes-export",
                "health/osm-notes-health",
                "backup/osm-notes-backup",
                "maintenance/osm-notes-maintenance",
            )
        ]
        with ThreadPoolExecutor(max_workers=2) as pool:
            chains = [pool.submit(rehearsal.chain, steps) for steps in (fleet, osm_notes)]
            for chain in chains:
                chain.result()
    print(f"\n{rehearsal.table()}")  # the closing note's table

    failed = [o for o in rehearsal.outcomes if o.state != "COMPLETED"]
    assert not failed, "\n\n".join(f"{o.deployment}: {o.state}\n{o.message}" for o in failed)
    assert {o.deployment.split("/", 1)[1] for o in rehearsal.outcomes} == set(declared), (
        "every deployment of prefect.yaml runs in the rehearsal"
    )

    # 4. What they left behind.
    for table in ("devices", "position_history", "trips", "alarms", "live_positions", "geofences"):
        assert env.count("wh", f"fleet_bronze.{table}") == env.count("source", f"public.{table}"), table
    assert env.count("wh", "osm_notes_dwh.facts") > 0
    s3 = policed_s3.client()
    assert _keys(s3, f"{PREFIX}/fleet/exports/") == []
    assert _keys(s3, f"{PREFIX}/fleet/processed/"), "parts moved to processed/"
    assert _keys(s3, f"{PREFIX}/prefect-results/"), "results persisted through the result block"
    with psycopg.connect(env.warehouse_admin) as conn:
        server_major = int(str(conn.execute("SHOW server_version_num").fetchone()[0])) // 10000  # type: ignore[index]
    dockerfile = (PROJECT_DIR / "Dockerfile").read_text(encoding="utf-8")
    assert f"postgresql-client-{server_major}" in dockerfile, "the image's pg_dump matches the server"
    for pipeline in ("fleet", "osm_notes"):
        assert _keys(s3, f"{PREFIX}/{pipeline}/backups/") == [], "backups live under their own prefix"
        (backup,) = _keys(s3, f"{PREFIX}-backups/{pipeline}/")
        archive = s3.get_object(Bucket=BUCKET, Key=backup)["Body"].read()
        assert _dumped_by(archive, tmp_path).split(".")[0] == str(server_major), backup
    # The export where OSM-Notes-Viewer looks: metadata, the indexes, every indexed user's file.
    export = f"{EXPORT_PREFIX}/osm_notes"
    published = set(_keys(s3, f"{export}/"))
    assert {f"{export}/metadata.json", f"{export}/manifest.json", f"{export}/global_stats.json"} <= published
    users = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{export}/indexes/users.json")["Body"].read())
    assert users, "the index lists the users"
    for entry in users:
        assert f"{export}/users/{viewer_shard(str(entry['user_id']))}/{entry['user_id']}.json" in published, (
            entry
        )
