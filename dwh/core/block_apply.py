"""`dwh blocks apply`: the blocks the product needs, saved from settings.

Apart from `dwh.core.blocks` (which only reads blocks) because saving the result
storage needs `dwh.core.results`, which itself reads the S3 credentials block: with
both in one module the two imported each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import SecretStr

from dwh.core.blocks import (
    DEFAULT_SOURCE_BLOCK,
    DEFAULT_STORAGE_BLOCK,
    DEFAULT_WAREHOUSE_BLOCK,
    aws_credentials,
    notification_block,
    notification_slug,
)
from dwh.core.results import ensure_result_storage
from dwh.core.settings import (
    ConnectionBlockSettings,
    NotificationSettings,
    SourceSettings,
    StorageSettings,
    WarehouseSettings,
    parse_url,
)

if TYPE_CHECKING:
    from prefect.blocks.core import Block
    from prefect_sqlalchemy import ConnectionComponents


@dataclass(frozen=True)
class Applied:
    """One block `apply` looked at: its slug and what happened to it."""

    slug: str
    action: str  # "saved", "created", "kept" or "skipped: <why>"


def apply_blocks(
    storage: StorageSettings, notify: NotificationSettings, *, connections: bool = False
) -> list[Applied]:
    """Save the result-storage and notification blocks from settings (idempotent).

    Saving overwrites in place (same document id), so automations that reference the
    notification block keep working. A block named as `<type>/<name>` is managed
    elsewhere and left alone. With `connections`, also create the connection blocks
    from the environment, but only where missing: after that they belong to the
    operator, who rotates them in the UI, and apply must not undo that.
    """
    # Connections first: the result storage may reference the storage credentials block.
    applied = _create_connection_blocks(storage) if connections else []
    applied.append(Applied(ensure_result_storage(storage), "saved"))
    if "/" in notify.block:
        applied.append(Applied(notify.block, "kept (managed outside dwh)"))
    elif notify.kind != "email" and notify.webhook_url is None:
        applied.append(Applied(notification_slug(notify), "skipped: DWH_NOTIFY_WEBHOOK_URL is not set"))
    else:
        notification_block(notify).save(notify.block, overwrite=True)
        applied.append(Applied(notification_slug(notify), "saved"))
    return applied


def connection_components(
    url: SecretStr, setting: str, password: SecretStr | None = None
) -> ConnectionComponents:
    """A libpq URL as prefect-sqlalchemy components: the password stays a secret field, and
    every other parameter (sslmode, sslrootcert, connect_timeout…) rides along as a query."""
    from prefect_sqlalchemy import ConnectionComponents  # noqa: PLC0415

    params = parse_url(url, setting)
    in_url = params.pop("password", None)
    named = {"host", "port", "dbname", "user"}
    return ConnectionComponents(
        driver="postgresql+psycopg",
        host=params.get("host"),
        port=int(params["port"]) if params.get("port") else None,
        database=params.get("dbname"),
        username=params.get("user"),
        password=password or (SecretStr(in_url) if in_url else None),
        query={k: v for k, v in params.items() if k not in named} or None,
    )


def _create_if_missing(block: Block, block_type: type[Block], name: str) -> Applied:
    slug = f"{block_type.get_block_type_slug()}/{name}"
    try:
        block_type.load(name)
    except ValueError:
        block.save(name)
        return Applied(slug, "created")
    return Applied(slug, "kept (exists; rotate it in the UI)")


def _create_connection_blocks(storage: StorageSettings) -> list[Applied]:
    from prefect_sqlalchemy import SqlAlchemyConnector  # noqa: PLC0415

    names = ConnectionBlockSettings()
    source = SourceSettings()  # type: ignore[call-arg]
    warehouse = WarehouseSettings()  # type: ignore[call-arg]
    # A URL without a user means "connect as <pipeline>_owner": the block then carries
    # the owner password, as DWH_WAREHOUSE_OWNER_PASSWORD does (see warehouse_settings).
    owner_password = None
    if not parse_url(warehouse.url, "DWH_WAREHOUSE_URL").get("user"):
        owner_password = warehouse.owner_password if warehouse.owner_password.get_secret_value() else None
    warehouse_info = connection_components(warehouse.url, "DWH_WAREHOUSE_URL", owner_password)
    applied = [
        _create_if_missing(
            SqlAlchemyConnector(connection_info=connection_components(source.url, "DWH_SOURCE_URL")),
            SqlAlchemyConnector,
            names.source_block or DEFAULT_SOURCE_BLOCK,
        ),
        _create_if_missing(
            SqlAlchemyConnector(connection_info=warehouse_info),
            SqlAlchemyConnector,
            names.warehouse_block or DEFAULT_WAREHOUSE_BLOCK,
        ),
    ]
    if storage.scheme == "s3":
        from prefect_aws import AwsCredentials  # noqa: PLC0415

        credentials = aws_credentials(storage.model_copy(update={"credentials_block": None}))
        applied.append(
            _create_if_missing(
                credentials, AwsCredentials, storage.credentials_block or DEFAULT_STORAGE_BLOCK
            )
        )
    return applied
