"""Typed settings, one class per concern, resolved from the environment (and `.env`).

Every secret is a `SecretStr` so it prints as `**********` in logs, reprs, flow
parameters and tracebacks; code that needs the value calls `.get_secret_value()`
at the last moment, when it builds a connection.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


def _settings_config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", env_file_encoding="utf-8", extra="ignore")


def _conninfo(url: SecretStr, sslmode: SslMode, **overrides: str | None) -> str:
    """Build a libpq conninfo from a URL, forcing sslmode and any overrides."""
    extra = {k: v for k, v in overrides.items() if v is not None}
    return make_conninfo(url.get_secret_value(), sslmode=sslmode, **extra)


def redact_conninfo(conninfo: str) -> str:
    """Describe a connection (user@host:port/db) without its password, for messages."""
    params = conninfo_to_dict(conninfo)
    return "{}@{}:{}/{}".format(
        params.get("user", "?"),
        params.get("host", "?"),
        params.get("port", "5432"),
        params.get("dbname", "?"),
    )


class SourceSettings(BaseSettings):
    """The OLTP database we extract from (read-only use)."""

    model_config = _settings_config("DWH_SOURCE_")

    url: SecretStr = Field(description="libpq URL of the source database")
    sslmode: SslMode = "prefer"

    def conninfo(self) -> str:
        return _conninfo(self.url, self.sslmode, application_name="dwh-extract")


class WarehouseSettings(BaseSettings):
    """The analytical warehouse we load into.

    `url` normally names no user: flows then connect as `<pipeline>_owner` with
    `owner_password`, so one URL serves every pipeline of the warehouse. `admin_url`
    is the one-time DDL credential used only by `dwh migrate` (seed §3).
    """

    model_config = _settings_config("DWH_WAREHOUSE_")

    url: SecretStr = Field(description="libpq URL of the warehouse database")
    admin_url: SecretStr | None = Field(
        default=None, description="superuser/DDL URL for `dwh migrate`; defaults to url"
    )
    owner_password: SecretStr = Field(
        default=SecretStr(""), description="password set on and used by <pipeline>_owner"
    )
    ro_password: SecretStr = Field(default=SecretStr(""), description="password set on <pipeline>_ro")
    sslmode: SslMode = "prefer"

    def owner_conninfo(self, pipeline: str) -> str:
        """Connection used by the flows: the pipeline's owner role unless the URL names one."""
        named_user = conninfo_to_dict(self.url.get_secret_value()).get("user")
        if named_user:
            return _conninfo(self.url, self.sslmode, application_name=f"dwh-{pipeline}")
        password = self.owner_password.get_secret_value() or None
        return _conninfo(
            self.url,
            self.sslmode,
            user=f"{pipeline}_owner",
            password=password,
            application_name=f"dwh-{pipeline}",
        )

    def ro_conninfo(self, pipeline: str) -> str:
        password = self.ro_password.get_secret_value() or None
        return _conninfo(self.url, self.sslmode, user=f"{pipeline}_ro", password=password)

    def admin_conninfo(self) -> str:
        return _conninfo(self.admin_url or self.url, self.sslmode, application_name="dwh-migrate")


class StorageSettings(BaseSettings):
    """Object storage for CSV parts: `file:///path` or `s3://bucket/prefix`.

    Endpoint and keys come from the usual AWS variables, so MinIO, rustfs, moto or
    AWS itself all work without product-specific configuration.
    """

    model_config = _settings_config("DWH_STORAGE_")

    url: str = Field(default=f"file://{PROJECT_DIR / '.dwh' / 'storage'}")
    endpoint_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DWH_STORAGE_ENDPOINT_URL", "AWS_ENDPOINT_URL")
    )
    access_key_id: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("DWH_STORAGE_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
    )
    secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("DWH_STORAGE_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    )
    region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("DWH_STORAGE_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
    )
    credentials_block: str | None = Field(
        default=None,
        description="prefect-aws AwsCredentials block that replaces the key, region and endpoint above",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = urlparse(value).scheme
        if scheme not in {"file", "s3"}:
            msg = f"DWH_STORAGE_URL must start with file:// or s3://, got {value!r}"
            raise ValueError(msg)
        return value

    @cached_property
    def scheme(self) -> Literal["file", "s3"]:
        return "s3" if self.url.startswith("s3://") else "file"


class NotificationSettings(BaseSettings):
    """Where automations send alerts (webhook by default; Slack and email documented)."""

    model_config = _settings_config("DWH_NOTIFY_")

    kind: Literal["webhook", "slack", "email"] = "webhook"
    webhook_url: SecretStr | None = None
    email_to: str | None = None
    email_from: str | None = Field(default=None, description="sender address (kind=email)")
    email_api_key: SecretStr | None = Field(default=None, description="SendGrid API key (kind=email)")
    block: str = Field(
        default="dwh-notify",
        description="notification block the automations use: a name (`dwh blocks apply` creates it "
        "from kind) or `<block-type-slug>/<name>` of a block managed elsewhere (left alone)",
    )
    freshness_factor: float = Field(
        default=2.0, gt=0, description="a table is stale after this many cadences without a load"
    )


class ConnectionBlockSettings(BaseSettings):
    """Prefect blocks that, when named, supply the database URLs instead of the environment.

    Separate from `SourceSettings`/`WarehouseSettings` because those require a URL, and
    with a block the environment has none. An operator then rotates a credential in the
    Prefect UI and the next flow run uses it, without a redeploy.
    """

    model_config = _settings_config("DWH_")

    source_block: str | None = Field(default=None, description="SqlAlchemyConnector block for the source")
    warehouse_block: str | None = Field(
        default=None, description="SqlAlchemyConnector block for the warehouse (replaces DWH_WAREHOUSE_URL)"
    )


class RunSettings(BaseSettings):
    """How the engine runs: parallelism, naming timezone, where catalogs and SQL live.

    Part size is per table in the catalog (`chunk_rows`), not a global setting.
    """

    model_config = _settings_config("DWH_")

    max_parallel_tables: int = Field(default=2, ge=1)
    timezone: str = "Africa/Nairobi"
    pipelines_dir: Path = PROJECT_DIR / "pipelines"
    sql_dir: Path = PROJECT_DIR / "sql"


class ExportSettings(BaseSettings):
    """Where `export_json` publishes: `file:///dir` or `s3://bucket/prefix`, and how many versions stay.

    S3 endpoint and keys are those of `StorageSettings` (the usual AWS variables).
    """

    model_config = _settings_config("DWH_EXPORT_")

    url: str = Field(default=f"file://{PROJECT_DIR / 'output' / 'json'}")
    keep_versions: int = Field(
        default=5, ge=1, description="published versions kept, the current one included"
    )
    copy_workers: int = Field(default=16, ge=1, description="parallel uploads on S3")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if urlparse(value).scheme not in {"file", "s3"}:
            msg = f"DWH_EXPORT_URL must start with file:// or s3://, got {value!r}"
            raise ValueError(msg)
        return value
