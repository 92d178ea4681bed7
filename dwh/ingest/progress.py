"""Progress reports fan out to the run logger and to any listener (the CLI's bar)."""

from __future__ import annotations

import logging
import threading

from dwh.ingest.engine import Progress, ProgressFn

_listeners: list[ProgressFn] = []
_lock = threading.Lock()


def add_listener(listener: ProgressFn) -> None:
    with _lock:
        _listeners.append(listener)


def remove_listener(listener: ProgressFn) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def reporter(logger: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> ProgressFn:
    """A sink that logs every (throttled) report and forwards it to listeners."""

    def report(progress: Progress) -> None:
        logger.info(progress.describe())
        with _lock:
            listeners = list(_listeners)
        for listener in listeners:
            listener(progress)

    return report
