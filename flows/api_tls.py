"""One TLS context for all of a process's Prefect API clients, instead of one per client.

Prefect 3.8 builds a new `ssl.SSLContext` for every `PrefectClient` it creates, loading
the whole CA bundle each time (certifi's ~140 certificates: 22-36 ms of CPU on 2 cores
with OpenSSL 3), and a flow run creates dozens: one per task run submitted to a thread,
per concurrency-slot release, per log and event worker. In an in-process fleet ingest
that was the hottest frame, 18 % of the CPU. A context only holds what to trust; one
built from the same settings serves every client (httpx shares one across all of a
client's connections already), and Prefect uses a context handed to it in
`httpx_settings["verify"]` as it is (PrefectHQ/prefect#19106 proposes a setting for it).

The context is built exactly as Prefect builds it, from the settings in force when a
client is created (`PREFECT_API_SSL_CERT_FILE`, else certifi's bundle;
`PREFECT_API_TLS_INSECURE_SKIP_VERIFY`), once per distinct setting and process. A CA
file changed on disk reaches the next process, as a rotated certificate does: a flow
run is one process.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from typing import Any

import certifi
from prefect.client.orchestration import PrefectClient, SyncPrefectClient
from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY

_MARK = "_dwh_shares_api_tls_context"


@functools.lru_cache(maxsize=8)
def _context(cafile: str, insecure: bool) -> ssl.SSLContext:
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=cafile)


def api_tls_context() -> ssl.SSLContext:
    """The context Prefect would build for a client now; built once per settings."""
    cafile = PREFECT_API_SSL_CERT_FILE.value() or certifi.where()
    return _context(str(cafile), bool(PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value()))


def share_api_tls_context() -> None:
    """Make every Prefect client created from now on use `api_tls_context()` (idempotent).

    A client given its own `verify` (a context, a path, False) keeps it.
    """
    for client_class in (PrefectClient, SyncPrefectClient):
        original = client_class.__init__
        if getattr(original, _MARK, False):
            continue

        @functools.wraps(original)
        def init(
            self: object,
            api: object,  # a URL or an ASGI app
            *args: object,
            _original: Callable[..., None] = original,
            httpx_settings: dict[str, Any] | None = None,
            **kwargs: object,
        ) -> None:
            settings = dict(httpx_settings or {})
            settings.setdefault("verify", api_tls_context())
            _original(self, api, *args, httpx_settings=settings, **kwargs)

        setattr(init, _MARK, True)
        setattr(client_class, "__init__", init)  # noqa: B010 - mypy refuses assigning a method
