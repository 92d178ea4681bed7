"""Polling with a deadline, for tests that wait on another process or a server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60, interval: float = 0.5) -> Any:
    """Poll until `probe` returns something truthy and return it; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@contextmanager
def in_background(what: str, action: Callable[[], None], timeout: float = 120) -> Iterator[None]:
    """Run `action` on a thread while the block runs; at exit wait for it and re-raise its error.

    For an outage that must end while the engine is busy (before a retry fires), where
    the test's own thread is blocked in the engine call.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # noqa: BLE001  (pytest.fail raises a BaseException)
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"test-{what}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"{what} still running after {timeout:.0f} s")
    if errors:
        raise errors[0]
