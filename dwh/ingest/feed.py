"""The parts of an extract in progress, handed to a load that follows it in the same process.

An extract of a large table wrote every part before the load read the first, so a
run took extract + load. With a feed, the chain starts its load subflow beside the
extract subflow: the extract announces its run and each part once it is published
(visible in exports/), and the load COPYs each part as it arrives. Only the COPY
overlaps: the load checks, records and commits nothing before the extract has
marked its run uploaded, so a run is still loaded from a finished extract or not
at all, and a failed extract leaves the same run log and parts it always left.

A retried extract starts a new run on the same feed; the load drops what it copied
of the failed attempt (its transaction rolls back) and follows the new one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import Enum


class FeedAbandonedError(RuntimeError):
    """The run being followed failed in its extract; its copied rows must roll back."""


class RunState(Enum):
    RUNNING = "running"
    UPLOADED = "uploaded"
    FAILED = "failed"


@dataclass
class _Run:
    run_id: int
    repair: bool
    keys: list[str] = field(default_factory=list)
    state: RunState = RunState.RUNNING


class PartFeed:
    """Runs and published part keys of one table's extract, in the order they happen.

    Thread-safe: the extract (and each range writer of a split table) publishes on its
    threads, the load reads on its own. Keys are kept, not consumed, so a load task
    that retries reads its run's parts again from the first.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._runs: list[_Run] = []
        self._closed = False

    # The extract's side.
    def started(self, run_id: int, *, repair: bool) -> None:
        with self._changed:
            self._runs.append(_Run(run_id, repair))
            self._changed.notify_all()

    def published(self, run_id: int, key: str) -> None:
        with self._changed:
            self._run(run_id).keys.append(key)
            self._changed.notify_all()

    def ended(self, run_id: int, *, uploaded: bool) -> None:
        with self._changed:
            self._run(run_id).state = RunState.UPLOADED if uploaded else RunState.FAILED
            self._changed.notify_all()

    def close(self) -> None:
        """No more runs: the extract subflow returned or raised."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    # The load's side.
    def current_run(self) -> tuple[int, bool] | None:
        """The run to follow and whether it repairs: the newest, once it is running or
        uploaded; None if none will be.

        Blocks while the newest run failed and a retry may still start another.
        """
        with self._changed:
            while True:
                if self._runs and self._runs[-1].state is not RunState.FAILED:
                    return self._runs[-1].run_id, self._runs[-1].repair
                if self._closed:
                    return None
                self._changed.wait()

    def failed_runs(self) -> list[int]:
        with self._changed:
            return [r.run_id for r in self._runs if r.state is RunState.FAILED]

    def keys(self, run_id: int) -> Iterator[str]:
        """The run's part keys as they are published; ends when the run is uploaded.

        Raises FeedAbandonedError when the run fails (or the feed closes before it ended).
        """
        seen = 0
        while True:
            with self._changed:
                run = self._run(run_id)
                while seen == len(run.keys) and run.state is RunState.RUNNING and not self._closed:
                    self._changed.wait()
                fresh, state = run.keys[seen:], run.state
            if fresh:
                seen += len(fresh)
                yield from fresh
            elif state is RunState.UPLOADED:  # every key is in: an uploaded run publishes no more
                return
            else:  # failed, or the feed closed with the run still running
                msg = f"run {run_id}: its extract failed; the rows copied from its parts roll back"
                raise FeedAbandonedError(msg)

    def wait_uploaded(self, run_id: int) -> list[str]:
        """Every key of the run once it is uploaded (for a load that must not start earlier)."""
        return list(self.keys(run_id))

    def _run(self, run_id: int) -> _Run:
        for run in reversed(self._runs):
            if run.run_id == run_id:
                return run
        msg = f"run {run_id} was never announced on this feed"
        raise LookupError(msg)


class FollowedKeys:
    """The keys of one followed run, iterable again (a load that restarts its COPY reads them all)."""

    def __init__(self, feed: PartFeed, run_id: int) -> None:
        self.feed, self.run_id = feed, run_id

    def __iter__(self) -> Iterator[str]:
        return self.feed.keys(self.run_id)


_current: ContextVar[PartFeed | None] = ContextVar("dwh_part_feed", default=None)


def current_feed() -> PartFeed | None:
    """The feed of the chain this code runs in, if its load follows its extract."""
    return _current.get()


@contextmanager
def following(feed: PartFeed) -> Iterator[PartFeed]:
    """Make `feed` the current one; closes it on the way out, so a follower never waits forever."""
    token = _current.set(feed)
    try:
        yield feed
    finally:
        feed.close()
        _current.reset(token)
