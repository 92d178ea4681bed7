"""Blocks as Prefect users apply and read them, against the session's `prefect server start`.

`dwh blocks apply` (the notification webhook, connections it creates once and never
overwrites) and the engine reading its database URLs and S3 credentials from the blocks
named in settings, with the URLs in the environment pointing nowhere.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import psycopg
import pytest

import devstack
from tests.conftest import Env
from tests.prefect_server import Server
from tests.webhook import DWH, Receiver

pytestmark = [
    pytest.mark.devstack,
    pytest.mark.skipif(
        not (devstack.PG_BIN / "initdb").exists(),
        reason=f"PostgreSQL 15 binaries are not in {devstack.PG_BIN}",
    ),
]


@pytest.fixture(scope="module")
def server(prefect_server: Server) -> Server:
    """The session's real `prefect server start` (tests/conftest.py)."""
    return prefect_server


@pytest.mark.usefixtures("prefect_api")
def test_blocks_apply_is_idempotent_and_its_webhook_block_delivers(
    server: Server, receiver: Receiver, notify_env: dict[str, str]
) -> None:
    from prefect.blocks.core import Block  # noqa: PLC0415

    def ids() -> tuple[uuid.UUID, uuid.UUID]:
        with server.client() as client:
            notify = client.read_block_document_by_name("dwh-notify", "custom-webhook")
            results = client.read_block_document_by_name("dwh-results", "local-file-system")
        return notify.id, results.id

    before = ids()
    output = server.run(DWH, "blocks", "apply", extra_env=notify_env)
    assert "custom-webhook/dwh-notify" in output
    assert ids() == before, "apply again updates the same blocks in place"
    with server.client() as client:
        masked = client.read_block_document_by_name("dwh-notify", "custom-webhook", include_secrets=False)
        document = client.read_block_document_by_name("dwh-notify", "custom-webhook")
    assert masked.data["url"] == "{{webhook_url}}"
    assert receiver.url not in json.dumps(masked.data), "the webhook URL is kept as a secret"
    marker = uuid.uuid4().hex
    Block._from_block_document(document).notify(f"ping {marker}", subject="test")  # type: ignore[attr-defined]
    assert receiver.received(marker)[0]["subject"] == "test"


@pytest.mark.usefixtures("prefect_api")
def test_database_urls_come_from_the_sqlalchemy_blocks_named_in_settings(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect_sqlalchemy import ConnectionComponents, SqlAlchemyConnector  # noqa: PLC0415

    from dwh.ingest.engine import Engine  # noqa: PLC0415

    env.migrate()
    tag = uuid.uuid4().hex[:8]
    source = psycopg.conninfo.conninfo_to_dict(os.environ["DWH_SOURCE_URL"])
    SqlAlchemyConnector(
        connection_info=os.environ["DWH_SOURCE_URL"].replace("postgresql://", "postgresql+psycopg://")
    ).save(f"src-{tag}")
    warehouse = psycopg.conninfo.conninfo_to_dict(os.environ["DWH_WAREHOUSE_URL"])
    SqlAlchemyConnector(
        connection_info=ConnectionComponents(
            driver="postgresql+psycopg",
            host=str(warehouse["host"]),
            port=int(str(warehouse["port"])),
            database=str(warehouse["dbname"]),
            password=os.environ["DWH_WAREHOUSE_OWNER_PASSWORD"],  # no user: <pipeline>_owner
        )
    ).save(f"wh-{tag}")
    # The environment now points nowhere: only the blocks can make these connections work.
    nowhere = "postgresql://nobody:wrong@127.0.0.1:1/nowhere"
    monkeypatch.setenv("DWH_SOURCE_URL", nowhere)
    monkeypatch.setenv("DWH_WAREHOUSE_URL", nowhere)
    monkeypatch.delenv("DWH_WAREHOUSE_OWNER_PASSWORD")
    monkeypatch.setenv("DWH_SOURCE_BLOCK", f"src-{tag}")
    monkeypatch.setenv("DWH_WAREHOUSE_BLOCK", f"wh-{tag}")

    engine = Engine.from_settings("fleet")
    with psycopg.connect(engine.source_conninfo) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (source["dbname"],)
    with psycopg.connect(engine.warehouse_conninfo) as conn:
        assert conn.execute("SELECT current_database(), current_user").fetchone() == (
            warehouse["dbname"],
            "fleet_owner",
        )


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("storage_kind", ["s3"])
def test_s3_credentials_come_from_the_aws_credentials_block_named_in_settings(
    env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from prefect_aws import AwsClientParameters, AwsCredentials  # noqa: PLC0415

    from dwh.core.results import result_storage  # noqa: PLC0415
    from dwh.core.settings import StorageSettings  # noqa: PLC0415
    from dwh.ingest.storage import open_location  # noqa: PLC0415

    name = f"s3-{uuid.uuid4().hex[:8]}"
    AwsCredentials(
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name=os.environ["AWS_DEFAULT_REGION"],
        aws_client_parameters=AwsClientParameters(endpoint_url=os.environ["AWS_ENDPOINT_URL"]),
    ).save(name)
    # Without the block the client would go to real AWS (no endpoint) with no keys.
    for variable in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(variable)
    monkeypatch.setenv("DWH_STORAGE_CREDENTIALS_BLOCK", name)

    location = open_location(StorageSettings())
    assert env.storage_url.startswith("s3://")
    spool = tmp_path / "part.csv"
    spool.write_bytes(b"id\n1\n")
    location.storage.publish(spool, location.key("probe", "part.csv"))
    assert location.storage.list(location.key("probe")) == [location.key("probe", "part.csv")]
    # The result storage references the block instead of copying its keys.
    credentials = result_storage(StorageSettings()).credentials  # type: ignore[attr-defined]
    assert credentials._block_document_name == name


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("storage_kind", ["s3"])
def test_result_storage_block_is_saved_again_only_when_the_environment_changed(
    env: Env, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every `ingest` run checks the block; saving it each time cost ~0.8 s per run on S3."""
    from dwh.core.results import RESULT_BLOCK_NAME, saved_result_storage  # noqa: PLC0415
    from dwh.core.settings import StorageSettings  # noqa: PLC0415

    def saved() -> tuple[object, str, str]:
        with server.client() as client:
            document = client.read_block_document_by_name(RESULT_BLOCK_NAME, "s3-bucket")
        credentials = document.data["credentials"]
        return document.updated, document.data["bucket_folder"], credentials["aws_secret_access_key"]

    prefix = env.storage_url.removeprefix("s3://dwh-dev/")
    first = saved_result_storage(StorageSettings())
    updated, folder, secret = saved()
    assert (folder, secret) == (f"{prefix}/prefect-results", os.environ["AWS_SECRET_ACCESS_KEY"])

    again = saved_result_storage(StorageSettings())
    assert saved()[0] == updated, "an unchanged environment must not save the block again"
    assert again._block_document_id == first._block_document_id  # type: ignore[attr-defined]

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "rotated")  # a changed secret is a change too
    saved_result_storage(StorageSettings())
    assert saved()[1:] == (f"{prefix}/prefect-results", "rotated")
    assert saved()[0] != updated


@pytest.mark.usefixtures("prefect_api")
def test_a_missing_connection_block_is_an_error_naming_setting_and_block(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dwh.core.blocks import BlockError, source_settings  # noqa: PLC0415

    assert env.source_db
    monkeypatch.setenv("DWH_SOURCE_BLOCK", "no-such-block")
    with pytest.raises(BlockError, match=r"DWH_SOURCE_BLOCK='no-such-block'.*sqlalchemy-connector"):
        source_settings()


@pytest.mark.usefixtures("prefect_api")
def test_blocks_apply_with_connections_creates_missing_ones_once_and_never_overwrites(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dwh.core.block_apply import apply_blocks  # noqa: PLC0415
    from dwh.core.settings import NotificationSettings, StorageSettings  # noqa: PLC0415
    from dwh.ingest.engine import Engine  # noqa: PLC0415

    env.migrate()
    tag = uuid.uuid4().hex[:8]
    monkeypatch.setenv("DWH_SOURCE_BLOCK", f"src-{tag}")
    monkeypatch.setenv("DWH_WAREHOUSE_BLOCK", f"wh-{tag}")
    settings = NotificationSettings(block=f"notify-{tag}")
    first = apply_blocks(StorageSettings(), settings, connections=True)
    assert {(a.slug, a.action) for a in first} >= {
        (f"sqlalchemy-connector/src-{tag}", "created"),
        (f"sqlalchemy-connector/wh-{tag}", "created"),
    }
    # An operator rotates in the UI; running apply again with an old env must not undo it.
    monkeypatch.setenv("DWH_SOURCE_URL", "postgresql://old:old@127.0.0.1:1/old")
    second = apply_blocks(StorageSettings(), settings, connections=True)
    assert (f"sqlalchemy-connector/src-{tag}", "kept (exists; rotate it in the UI)") in {
        (a.slug, a.action) for a in second
    }
    monkeypatch.setenv("DWH_WAREHOUSE_URL", "postgresql://127.0.0.1:1/old")
    monkeypatch.delenv("DWH_WAREHOUSE_OWNER_PASSWORD")
    engine = Engine.from_settings("fleet")
    with psycopg.connect(engine.source_conninfo) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (env.source_db,)
    with psycopg.connect(engine.warehouse_conninfo) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("fleet_owner",)
