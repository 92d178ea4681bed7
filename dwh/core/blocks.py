"""Prefect blocks: connections read from them, and the blocks the product creates itself.

The environment stays the default source of every setting. Naming a block moves one
credential into the Prefect server instead (`DWH_SOURCE_BLOCK`, `DWH_WAREHOUSE_BLOCK`:
prefect-sqlalchemy `SqlAlchemyConnector`; `DWH_STORAGE_CREDENTIALS_BLOCK`: prefect-aws
`AwsCredentials`), so an operator rotates it in the UI and the next flow run uses it,
without a redeploy. Blocks are read inside the worker at run time, like the
environment, so no credential passes through flow parameters.

`dwh blocks apply` saves the result-storage and notification blocks from settings, so
nobody clicks them together in the UI. Prefect is imported inside the functions: the
engine imports this module and must stay importable (and fast) without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

from pydantic import SecretStr

from dwh.core.settings import (
    ConnectionBlockSettings,
    NotificationSettings,
    SourceSettings,
    StorageSettings,
    WarehouseSettings,
    parse_url,
)

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.blocks.abstract import NotificationBlock
    from prefect.blocks.core import Block
    from prefect_aws import AwsCredentials
    from prefect_sqlalchemy import ConnectionComponents, SqlAlchemyConnector

    BlockT = TypeVar("BlockT", bound=Block)

# Names `dwh blocks apply --connections` gives the blocks when no setting names them;
# prefect.yaml's docker and kubernetes job variables point the flows at these.
DEFAULT_SOURCE_BLOCK = "dwh-source"
DEFAULT_WAREHOUSE_BLOCK = "dwh-warehouse"
DEFAULT_STORAGE_BLOCK = "dwh-storage"


class BlockError(RuntimeError):
    """A block a setting names is missing or unusable; the message names setting and block."""


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

    return PREFECT_API_URL.value() or "(no PREFECT_API_URL set: an ephemeral server)"


def require_prefect_api(command: str) -> None:
    """Refuse to apply to the throwaway server Prefect starts when no API is configured."""
    from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

    if not PREFECT_API_URL.value():
        msg = (
            f"PREFECT_API_URL is not set: `{command}` would write to a throwaway ephemeral "
            'server; point PREFECT_API_URL at your Prefect server (or `eval "$(dwh dev env)"`)'
        )
        raise BlockError(msg)


def _load(block_type: type[BlockT], name: str, setting: str) -> BlockT:
    try:
        return block_type.load(name)  # type: ignore[return-value]
    except ValueError as exc:
        slug = block_type.get_block_type_slug()
        msg = (
            f"{setting}={name!r}: no {slug} block named {name!r} on the Prefect server at "
            f"{_api_url()}; create it (`dwh blocks apply --connections` or the UI) or unset {setting}"
        )
        raise BlockError(msg) from exc


def postgres_url(connector: SqlAlchemyConnector, setting: str, name: str) -> SecretStr:
    """The connector's URL as libpq reads it: any `postgresql+<driver>` becomes `postgresql`."""
    from prefect_sqlalchemy import ConnectionComponents  # noqa: PLC0415
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    info = connector.connection_info
    url = info.create_url() if isinstance(info, ConnectionComponents) else make_url(str(info))
    if url.get_backend_name() != "postgresql":
        msg = f"{setting}={name!r}: the block connects to {url.drivername!r}, not PostgreSQL"
        raise BlockError(msg)
    if url.username is None and url.password is not None:
        url = url.set(username="")  # else SQLAlchemy drops a password given without a user
    return SecretStr(url.set(drivername="postgresql").render_as_string(hide_password=False))


def _sqlalchemy_url(name: str, setting: str) -> SecretStr:
    from prefect_sqlalchemy import SqlAlchemyConnector  # noqa: PLC0415

    return postgres_url(_load(SqlAlchemyConnector, name, setting), setting, name)


def source_settings() -> SourceSettings:
    """Source settings, with the URL from the block `DWH_SOURCE_BLOCK` names, if any."""
    name = ConnectionBlockSettings().source_block
    if name is None:
        return SourceSettings()  # type: ignore[call-arg]
    return SourceSettings(url=_sqlalchemy_url(name, "DWH_SOURCE_BLOCK"))


def warehouse_settings() -> WarehouseSettings:
    """Warehouse settings, with the URL from the block `DWH_WAREHOUSE_BLOCK` names, if any.

    A block URL without a user keeps the usual rule (flows connect as
    `<pipeline>_owner`); its password then serves as the owner password unless
    `DWH_WAREHOUSE_OWNER_PASSWORD` is set.
    """
    name = ConnectionBlockSettings().warehouse_block
    if name is None:
        return WarehouseSettings()  # type: ignore[call-arg]
    return WarehouseSettings(url=_sqlalchemy_url(name, "DWH_WAREHOUSE_BLOCK"))


def aws_credentials(settings: StorageSettings) -> AwsCredentials:
    """The S3 credentials: the block `DWH_STORAGE_CREDENTIALS_BLOCK` names, else the AWS_* env."""
    from prefect_aws import AwsClientParameters, AwsCredentials  # noqa: PLC0415

    if settings.credentials_block:
        return _load(AwsCredentials, settings.credentials_block, "DWH_STORAGE_CREDENTIALS_BLOCK")
    verify: bool | Path = settings.ca_bundle or settings.verify_tls
    return AwsCredentials(
        aws_access_key_id=(settings.access_key_id.get_secret_value() if settings.access_key_id else None),
        aws_secret_access_key=settings.secret_access_key,
        region_name=settings.region,
        aws_client_parameters=AwsClientParameters(endpoint_url=settings.endpoint_url, verify=verify),
    )


# --- notification block ------------------------------------------------------------------


def _notification_block(settings: NotificationSettings) -> NotificationBlock:
    """The block `settings.kind` asks for, built from the settings (secrets stay secret)."""
    from prefect.blocks.notifications import (  # noqa: PLC0415
        CustomWebhookNotificationBlock,
        SendgridEmail,
        SlackWebhook,
    )

    if settings.kind == "email":
        if not settings.email_to or not settings.email_from or settings.email_api_key is None:
            msg = (
                "DWH_NOTIFY_KIND=email needs DWH_NOTIFY_EMAIL_TO, DWH_NOTIFY_EMAIL_FROM and "
                "DWH_NOTIFY_EMAIL_API_KEY (SendGrid)"
            )
            raise BlockError(msg)
        to = [address.strip() for address in settings.email_to.split(",") if address.strip()]
        return SendgridEmail(api_key=settings.email_api_key, sender_email=settings.email_from, to_emails=to)
    if settings.webhook_url is None:
        msg = f"DWH_NOTIFY_KIND={settings.kind} needs DWH_NOTIFY_WEBHOOK_URL"
        raise BlockError(msg)
    if settings.kind == "slack":
        return SlackWebhook(url=settings.webhook_url)
    # The URL often carries a token: it lives in the block's secrets, not its plain fields.
    return CustomWebhookNotificationBlock(  # type: ignore[call-arg]  # headers, cookies: optional
        name="dwh",
        url="{{webhook_url}}",
        json_data={"subject": "{{subject}}", "body": "{{body}}", "text": "{{subject}}\n{{body}}"},
        secrets={"webhook_url": settings.webhook_url.get_secret_value()},  # type: ignore[arg-type]
    )


def _kind_slug(settings: NotificationSettings) -> str:
    from prefect.blocks.notifications import (  # noqa: PLC0415
        CustomWebhookNotificationBlock,
        SendgridEmail,
        SlackWebhook,
    )

    block_type: dict[str, type[Block]] = {
        "webhook": CustomWebhookNotificationBlock,
        "slack": SlackWebhook,
        "email": SendgridEmail,
    }
    return str(block_type[settings.kind].get_block_type_slug())


def notification_slug(settings: NotificationSettings) -> str:
    """`<block-type-slug>/<name>` of the block the automations notify through."""
    if "/" in settings.block:
        return settings.block
    return f"{_kind_slug(settings)}/{settings.block}"


def notification_block_id(settings: NotificationSettings) -> UUID:
    """The saved notification block's id, which automation actions reference."""
    from prefect.blocks.core import Block  # noqa: PLC0415

    slug = notification_slug(settings)
    try:
        block = cast("Block", Block.load(slug))
    except ValueError as exc:
        msg = (
            f"notification block {slug!r} does not exist on the Prefect server at {_api_url()}: "
            "run `dwh blocks apply` with DWH_NOTIFY_* set, or point DWH_NOTIFY_BLOCK at an "
            "existing block as <block-type-slug>/<name>"
        )
        raise BlockError(msg) from exc
    document_id = block._block_document_id  # noqa: SLF001 - Prefect exposes the id only this way
    if document_id is None:
        msg = f"notification block {slug!r} was loaded without a document id"
        raise BlockError(msg)
    return document_id


# --- dwh blocks apply --------------------------------------------------------------------


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
    from dwh.core.results import ensure_result_storage  # noqa: PLC0415

    # Connections first: the result storage may reference the storage credentials block.
    applied = _create_connection_blocks(storage) if connections else []
    applied.append(Applied(ensure_result_storage(storage), "saved"))
    if "/" in notify.block:
        applied.append(Applied(notify.block, "kept (managed outside dwh)"))
    elif notify.kind != "email" and notify.webhook_url is None:
        applied.append(Applied(notification_slug(notify), "skipped: DWH_NOTIFY_WEBHOOK_URL is not set"))
    else:
        _notification_block(notify).save(notify.block, overwrite=True)
        applied.append(Applied(notification_slug(notify), "saved"))
    return applied


def _connection_components(
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
    warehouse_info = _connection_components(warehouse.url, "DWH_WAREHOUSE_URL", owner_password)
    applied = [
        _create_if_missing(
            SqlAlchemyConnector(connection_info=_connection_components(source.url, "DWH_SOURCE_URL")),
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
