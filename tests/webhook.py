"""A webhook receiver, the notification block that posts to it, and in-process API access.

Fixtures the deployment and block tests share (imported by name into each module): a
tiny HTTP server that keeps every JSON body the notification block posts, `dwh blocks
apply` pointing the block at it, and in-process Prefect calls against the session's
`prefect server start`.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.prefect_server import Server

DWH = str(Path(sys.executable).parent / "dwh")


@dataclass
class Receiver:
    """A tiny HTTP server the notification block posts to; keeps every JSON body."""

    url: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, text: str) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages if text in json.dumps(m)]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with box[0].lock:
                box[0].messages.append(json.loads(body or b"{}"))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(f"http://127.0.0.1:{http.server_port}/hook"))
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        http.shutdown()
        http.server_close()


@pytest.fixture(scope="module")
def notify_env(
    prefect_server: Server, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """`dwh blocks apply` with a webhook to the receiver; the env later CLI calls reuse."""
    notify_env = {
        "DWH_NOTIFY_WEBHOOK_URL": receiver.url,
        "DWH_STORAGE_URL": f"file://{tmp_path_factory.mktemp('storage')}",
    }
    prefect_server.run(DWH, "blocks", "apply", extra_env=notify_env)
    return notify_env


@pytest.fixture
def prefect_api(prefect_server: Server) -> Iterator[None]:
    """In-process Prefect calls (Block.load/save, automations) against the session's Prefect server.

    Loading a block emits an event through Prefect's process-wide events worker, which
    binds to the first API it sees and keeps it: other modules' flows (on the test
    harness) would then send their events here. A null events client for the duration
    keeps that worker untouched.
    """
    from prefect.events.clients import NullEventsClient  # noqa: PLC0415
    from prefect.events.worker import EventsWorker  # noqa: PLC0415
    from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: PLC0415

    EventsWorker.set_client_override(NullEventsClient)
    try:
        with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
            yield
    finally:
        EventsWorker.set_client_override(None)
