"""Prefect blocks: connections read from them, and the blocks the product creates itself.

The environment stays the default source of every setting. Naming a block moves one
credential into the Prefect server instead (`DWH_SOURCE_BLOCK`, `DWH_WAREHOUSE_BLOCK`:
prefect-sqlalchemy `SqlAlchemyConnector`; `DWH_STORAGE_CREDENTIALS_BLOCK`: prefect-aws
`AwsCredentials`), so an operator rotates it in the UI and the next flow run uses it,
without a redeploy. Blocks are read inside the worker at run time, like the
environment, so no credential passes through flow parameters.

`dwh blocks apply` (`dwh.core.block_apply`) saves the result-storage and notification
blocks from settings, so nobody clicks them together in the UI. Prefect is imported
inside the functions: the engine imports this module and must stay importable (and
fast) without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

from pydantic import SecretStr

from dwh.core.settings import (
    ConnectionBlockSettings,
    NotificationSettings,
    SourceSettings,
    StorageSettings,
    WarehouseSettings,
)

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.blocks.abstract import NotificationBlock
    from prefect.blocks.core import Block
    from prefect_aws import AwsCredentials
    from prefect_sqlalchemy import SqlAlchemyConnector

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


def notification_block(settings: NotificationSettings) -> NotificationBlock:
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
