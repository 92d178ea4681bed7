"""The dev stack's optional services: moto as local S3 and a Prefect server."""

from __future__ import annotations

import contextlib
import os
import signal
from http import HTTPStatus
from pathlib import Path

from devstack.processes import free_port, http_status, start_detached, stop_detached, venv_script, wait_ready
from devstack.state import (
    HOST,
    MOTO_KEY,
    MOTO_READY_SECONDS,
    PREFECT_READY_SECONDS,
    S3_BUCKET,
    S3_PREFIX,
    S3_REGION,
    DevStackError,
    Service,
)


def start_moto(state_dir: Path) -> Service:
    port = free_port()
    log = state_dir / "moto.log"
    command = [str(venv_script("moto_server")), "-H", HOST, "-p", str(port)]
    process = start_detached("moto", command, log)
    service = Service(name="moto", pid=process.pid, port=port, log=log)
    wait_ready(
        process,
        service,
        lambda: http_status(f"http://{HOST}:{port}/") is not None,
        MOTO_READY_SECONDS,
    )
    try:
        create_bucket(port)
    except Exception as err:
        stop_detached(service, (signal.SIGTERM,))
        msg = f"creating bucket {S3_BUCKET} in moto on port {port} failed: {err}"
        raise DevStackError(msg) from err
    return service


def create_bucket(port: int) -> None:
    import boto3  # noqa: PLC0415  (~0.4 s: only when moto starts, not for every `dwh` command)

    client = boto3.client(
        "s3",
        endpoint_url=f"http://{HOST}:{port}",
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=MOTO_KEY,
        region_name=S3_REGION,
    )
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=S3_BUCKET)
    # As a production bucket should be: an overwrite in processed/ keeps the first version.
    client.put_bucket_versioning(Bucket=S3_BUCKET, VersioningConfiguration={"Status": "Enabled"})


def start_prefect(state_dir: Path, database_url: str) -> Service:
    port = free_port()
    log = state_dir / "prefect.log"
    home = state_dir / "prefect"
    home.mkdir(exist_ok=True)
    # An outer PREFECT_API_URL or database URL would tie this server to a real one.
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    server_env |= {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url,
    }
    command = [
        str(venv_script("prefect")),
        "server",
        "start",
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    process = start_detached("prefect", command, log, env=server_env)
    service = Service(name="prefect", pid=process.pid, port=port, log=log)
    health = f"http://{HOST}:{port}/api/health"
    wait_ready(process, service, lambda: http_status(health) == HTTPStatus.OK, PREFECT_READY_SECONDS)
    return service


def storage_env(state_dir: Path, moto: Service | None) -> dict[str, str]:
    if moto is None:
        return {"DWH_STORAGE_URL": f"file://{state_dir / 'storage'}"}
    return {
        "DWH_STORAGE_URL": f"s3://{S3_BUCKET}/{S3_PREFIX}",
        "AWS_ENDPOINT_URL": f"http://{HOST}:{moto.port}",
        "AWS_ACCESS_KEY_ID": MOTO_KEY,
        "AWS_SECRET_ACCESS_KEY": MOTO_KEY,
        "AWS_DEFAULT_REGION": S3_REGION,
    }
