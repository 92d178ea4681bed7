"""Typed settings, one class per concern, resolved from the environment (and `.env`).

Every secret is a `SecretStr` so it prints as `**********` in logs, reprs, flow
parameters and tracebacks; code that needs the value calls `.get_secret_value()`
at the last moment, when it builds a connection.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dwh.core.names import owner_role, ro_role

PROJECT_DIR = Path(__file__).resolve().parents[2]

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


def _settings_config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", env_file_encoding="utf-8", extra="ignore")


# Hosts where a plaintext fallback crosses no network: loopback and Unix sockets.
_LOCAL_HOSTS = {"", "localhost", "::1"}


class UrlError(ValueError):
    """A DWH_*_URL libpq cannot parse. The message names the setting, never the value:
    libpq quotes the offending token back, and in a URL that is often the password."""


def parse_url(url: SecretStr, setting: str) -> dict[str, str]:
    """A libpq URL or conninfo string as its parameters (query parameters included)."""
    try:
        params = conninfo_to_dict(url.get_secret_value())
    except ProgrammingError:
        msg = (
            f"{setting} is not a valid PostgreSQL URL or conninfo string (its value is not shown: "
            "it may hold a password); percent-encode reserved characters in the user and "
            "password, e.g. % as %25, @ as %40, / as %2F"
        )
        raise UrlError(msg) from None
    return {k: str(v) for k, v in params.items() if v is not None}


def is_local(params: dict[str, str]) -> bool:
    """True when every host is loopback or a Unix socket directory."""
    hosts = (params.get("host") or params.get("hostaddr") or "").split(",")
    return all(h in _LOCAL_HOSTS or h.startswith(("/", "127.")) for h in hosts)


def _conninfo(url: SecretStr, setting: str, sslmode: SslMode | None, **overrides: str | None) -> str:
    """Build a libpq conninfo from a URL, keeping its own parameters (sslmode, sslrootcert…).

    The sslmode is the URL's own if it names one, else the setting, else `verify-full`
    for any host that is not local (never a silent plaintext fallback across a network)
    and `prefer` on loopback and Unix sockets.
    """
    params = parse_url(url, setting)
    params.setdefault("sslmode", sslmode or ("prefer" if is_local(params) else "verify-full"))
    params.update({k: v for k, v in overrides.items() if v is not None})
    return make_conninfo("", **params)


def redact_conninfo(conninfo: str) -> str:
    """Describe a connection (user@host:port/db) without its password, for messages."""
    params = conninfo_to_dict(conninfo)
    return "{}@{}:{}/{}".format(
        params.get("user", "?"),
        params.get("host", "?"),
        params.get("port", "5432"),
        params.get("dbname", "?"),
    )


def source_limit_name(conninfo: str) -> str:
    """The global concurrency limit of one source database: host, port and name, no secret.

    Every pipeline and deployment reading the same database shares it, whatever role or
    password each uses; characters Prefect refuses in a limit's name become `_`.
    """
    params = conninfo_to_dict(conninfo)
    where = f"{params.get('host') or 'local'}-{params.get('port') or '5432'}-{params.get('dbname') or ''}"
    return "dwh-source-" + re.sub(r"[^A-Za-z0-9._-]", "_", where)


class SourceSettings(BaseSettings):
    """The OLTP database we extract from (read-only use)."""

    model_config = _settings_config("DWH_SOURCE_")

    url: SecretStr = Field(description="libpq URL of the source database")
    sslmode: SslMode | None = Field(
        default=None, description="when the URL names none; default verify-full, prefer on loopback"
    )

    def conninfo(self) -> str:
        return _conninfo(self.url, "DWH_SOURCE_URL", self.sslmode, application_name="dwh-extract")


class SeedSettings(BaseSettings):
    """Where `dwh seed-source` writes sample rows: the source application's own role.

    The flows' DWH_SOURCE_URL is a reader that cannot write the source tables (the guard
    refuses one that can), so writing sample data takes its own URL; unset, the source's.
    """

    model_config = _settings_config("DWH_SEED_")

    url: SecretStr | None = Field(default=None, description="libpq URL of a role that may write the source")

    def conninfo(self, fallback: SourceSettings) -> str:
        if self.url is None:
            return fallback.conninfo()
        return _conninfo(self.url, "DWH_SEED_URL", fallback.sslmode, application_name="dwh-seed")


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
    sslmode: SslMode | None = Field(
        default=None, description="when the URL names none; default verify-full, prefer on loopback"
    )

    def owner_conninfo(self, pipeline: str) -> str:
        """Connection used by the flows: the pipeline's owner role unless the URL names one."""
        named_user = parse_url(self.url, "DWH_WAREHOUSE_URL").get("user")
        if named_user:
            return _conninfo(self.url, "DWH_WAREHOUSE_URL", self.sslmode, application_name=f"dwh-{pipeline}")
        password = self.owner_password.get_secret_value() or None
        return _conninfo(
            self.url,
            "DWH_WAREHOUSE_URL",
            self.sslmode,
            user=owner_role(pipeline),
            password=password,
            application_name=f"dwh-{pipeline}",
        )

    def ro_conninfo(self, pipeline: str) -> str:
        password = self.ro_password.get_secret_value() or None
        return _conninfo(
            self.url, "DWH_WAREHOUSE_URL", self.sslmode, user=ro_role(pipeline), password=password
        )

    def admin_conninfo(self) -> str:
        setting = "DWH_WAREHOUSE_ADMIN_URL" if self.admin_url else "DWH_WAREHOUSE_URL"
        return _conninfo(self.admin_url or self.url, setting, self.sslmode, application_name="dwh-migrate")


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
    ca_bundle: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("DWH_STORAGE_CA_BUNDLE", "AWS_CA_BUNDLE"),
        description="PEM file of the CA that signed the S3 endpoint's certificate (a private MinIO)",
    )
    verify_tls: bool = Field(
        default=True, description="false only for a throwaway endpoint: certificates are not checked"
    )
    sse: Literal["AES256", "aws:kms"] | None = Field(
        default=None, description="server-side encryption asked for on every object the engine writes"
    )
    sse_kms_key_id: str | None = Field(default=None, description="KMS key (id, ARN or alias) for sse=aws:kms")

    def encryption_args(self) -> dict[str, str]:
        """boto3 ExtraArgs for uploads and copies; empty when nothing is asked for."""
        args: dict[str, str] = {"ServerSideEncryption": self.sse} if self.sse else {}
        if self.sse == "aws:kms" and self.sse_kms_key_id:
            args["SSEKMSKeyId"] = self.sse_kms_key_id
        return args

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


class BackupSettings(BaseSettings):
    """Where `backup` writes its archives: `file:///dir` or `s3://bucket/prefix`.

    Outside the CSV parts' prefix on purpose: the bucket policy then gives backups their
    own statement (and an operator can put Object Lock or a lifecycle on them alone).
    Unset, it is the storage URL with `-backups` appended (`s3://b/dwh` -> `s3://b/dwh-backups`).
    S3 endpoint and keys are those of `StorageSettings`.
    """

    model_config = _settings_config("DWH_BACKUP_")

    url: str | None = Field(default=None, description="archives go under <url>/<pipeline>/")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value and urlparse(value).scheme not in {"file", "s3"}:
            msg = f"DWH_BACKUP_URL must start with file:// or s3://, got {value!r}"
            raise ValueError(msg)
        return value or None  # an empty job variable means unset

    def resolved(self, storage: StorageSettings) -> str:
        """The URL in effect: the setting, else a sibling of the storage URL."""
        if self.url:
            return self.url
        parsed = urlparse(storage.url)
        path = parsed.path.rstrip("/")
        sibling = f"{path}-backups" if path.strip("/") else "/backups"
        return parsed._replace(path=sibling).geturl()


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
    fan_out: bool = Field(
        default=False,
        description="run each table's chain as its own flow run of `fan_out_deployment` on the work "
        "pool instead of on a thread of the parent (the `ingest` parameter fan_out wins when given)",
    )
    fan_out_deployment: str = Field(
        default="ingest-table/ingest-table",
        pattern=r"^[^/]+/[^/]+$",
        description="flow/deployment that runs one table's chain in fan-out mode (prefect.yaml)",
    )
    fan_out_tables: int = Field(
        default=32, ge=1, description="chains of one parent run in flight at once in fan-out mode"
    )
    source_extracts: int = Field(
        default=4,
        ge=1,
        description="most COPY streams reading one source database at once, across every run and "
        "worker (a Prefect global concurrency limit named after the source's host, port and database)",
    )
    allow_plaintext: bool = Field(
        default=False, description="let preflight pass a connection without TLS to a host that is not local"
    )
    allow_writable_source: bool = Field(
        default=False,
        description="run (with a warning) although the source role may write the tables it extracts",
    )
    growth_days: int = Field(
        default=14, ge=3, description="trailing days whose median rows/day the growth check compares with"
    )
    growth_min_ratio: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="health warns when a table's rows in the last 24 h fall below this x that median",
    )
    max_holdback_minutes: float = Field(
        default=60.0,
        gt=0,
        description="an extract's upper bound further than this below the source clock "
        "(an open source transaction holding it) fails health and verify and notifies",
    )
    quiet_probe_scan_mb: float = Field(
        default=8.0,
        ge=0,
        description="an incremental table with no index on its watermark is probed for an empty "
        "window (and, if empty, recorded without its extract and load subflows) when its source heap "
        "is at most this many MB: a scan that small costs less than the subflows; 0: indexed tables only",
    )
    timezone: str = "Africa/Nairobi"
    pipelines_dir: Path = PROJECT_DIR / "pipelines"
    sql_dir: Path = PROJECT_DIR / "sql"


class DatamartSettings(BaseSettings):
    """How a datamart refresh spreads its per-entity steps (a folder's `PARALLEL` plan).

    The sessions are the warehouse's: each takes a core of the warehouse server while
    the shares run, so more than its cores only queue.
    """

    model_config = _settings_config("DWH_DATAMART_")

    sessions: int = Field(
        default=2, ge=1, description="sessions a refresh computes its targets on (1: the refresh's own only)"
    )
    min_share: int = Field(
        default=2000,
        ge=1,
        description="fewest targets per session: a smaller refresh stays on one session, "
        "where the extra sessions' start and copies would cost more than they save",
    )


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
