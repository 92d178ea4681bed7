"""The probes `dwh health` and `dwh preflight` share: can we reach a database, write storage.

Each check turns a probe into its own verdict (health's hourly Check, preflight's Gate
with a fix); the probing itself, and what counts as reachable or writable, is here once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg

from dwh.core.settings import redact_conninfo
from dwh.ingest.engine import Engine
from dwh.ingest.storage import spool_dir

CONNECT_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class DatabaseProbe:
    """One connection attempt: where (password redacted), over TLS or not, or why it failed."""

    where: str
    ssl_in_use: bool
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def probe_database(conninfo: str) -> DatabaseProbe:
    """Connect and run `SELECT 1` within a few seconds."""
    where = redact_conninfo(conninfo)
    try:
        with psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT_SECONDS, autocommit=True) as conn:
            conn.execute("SELECT 1")
            return DatabaseProbe(where, ssl_in_use=conn.pgconn.ssl_in_use)
    except psycopg.Error as exc:
        return DatabaseProbe(where, ssl_in_use=False, error=str(exc))


@dataclass(frozen=True)
class StorageProbe:
    """A probe object written and deleted under the pipeline's prefix, or why that failed."""

    key_url: str  # the probe object's URL
    prefix_url: str  # the pipeline's prefix, where every part goes
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def probe_storage(engine: Engine, purpose: str) -> StorageProbe:
    """Write and delete `<prefix>/<pipeline>/<purpose>/probe-<uuid>` the way parts are published."""
    pipeline = engine.catalog.pipeline
    storage = engine.location.storage
    key = engine.location.key(pipeline, purpose, f"probe-{uuid.uuid4().hex}")
    prefix_url = storage.url(engine.location.key(pipeline))
    try:
        with spool_dir() as spool:
            staged = storage.staging_path(key, spool)
            staged.write_bytes(f"{purpose}\n".encode())
            storage.publish(staged, key)
        storage.delete(key)
    except Exception as exc:  # noqa: BLE001  (any failure is the answer)
        return StorageProbe(storage.url(key), prefix_url, error=str(exc))
    return StorageProbe(storage.url(key), prefix_url)
