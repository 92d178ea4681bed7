"""flows/api_tls.py: one TLS context for every Prefect API client, trusting what Prefect would.

An HTTPS server on 127.0.0.1 with a certificate from a CA made here answers the clients;
no other service is needed.
"""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prefect.client.orchestration import PrefectClient, SyncPrefectClient
from prefect.settings import (
    PREFECT_API_SSL_CERT_FILE,
    PREFECT_API_TLS_INSECURE_SKIP_VERIFY,
    temporary_settings,
)

import flows  # noqa: F401 - importing the flows shares the context
from tests.tls import Certificates, server_certificates


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'"hello"'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return server_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https_api(certificates: Certificates) -> Iterator[str]:
    """An HTTPS server answering every GET with 200, as a Prefect API's /hello does."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.cert, certificates.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()


def _hello(api: str, **httpx_settings: object) -> int:
    with SyncPrefectClient(api, httpx_settings=dict(httpx_settings) or None) as client:
        return client.hello().status_code


def test_clients_share_one_context_instead_of_loading_the_ca_bundle_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[object] = []
    create: Callable[..., ssl.SSLContext] = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(args or kwargs)
        return create(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    clients = [PrefectClient("http://127.0.0.1:9/api") for _ in range(5)]
    clients += [SyncPrefectClient("http://127.0.0.1:9/api") for _ in range(5)]
    assert len(built) <= 1, f"{len(built)} contexts built for 10 clients"


def test_the_shared_context_trusts_the_api_cert_file_and_only_it(
    https_api: str, certificates: Certificates
) -> None:
    with temporary_settings(updates={PREFECT_API_SSL_CERT_FILE: str(certificates.ca)}):
        assert _hello(https_api) == 200
    with (
        temporary_settings(updates={PREFECT_API_SSL_CERT_FILE: str(certificates.other_ca)}),
        pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        _hello(https_api)
    # Without a cert file: certifi's public CAs, which did not sign this server.
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        _hello(https_api)


def test_insecure_skip_verify_and_a_clients_own_verify_are_honoured(
    https_api: str, certificates: Certificates
) -> None:
    untrusted = {PREFECT_API_SSL_CERT_FILE: str(certificates.other_ca)}
    with temporary_settings(updates={**untrusted, PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True}):
        assert _hello(https_api) == 200
    with temporary_settings(updates=untrusted):
        assert _hello(https_api, verify=ssl.create_default_context(cafile=certificates.ca)) == 200
        assert _hello(https_api, verify=False) == 200


def test_a_changed_cert_file_setting_gets_its_own_context(certificates: Certificates) -> None:
    from flows.api_tls import api_tls_context  # noqa: PLC0415

    with temporary_settings(updates={PREFECT_API_SSL_CERT_FILE: str(certificates.ca)}):
        first = api_tls_context()
        assert api_tls_context() is first
        assert [c["subject"] for c in first.get_ca_certs()] == [((("commonName", "test-ca"),),)]
    with temporary_settings(updates={PREFECT_API_SSL_CERT_FILE: str(certificates.other_ca)}):
        assert api_tls_context() is not first
