"""The load's read-ahead: every byte in order, bounded memory, errors as raised, early exit stops it."""

from __future__ import annotations

import io
import threading
import time

import pytest

from dwh.ingest.storage import read_ahead


class _Counted(io.RawIOBase):
    """An endless stream of one-byte-pattern chunks that counts the reads made of it."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.reads = 0
        self.fail_after = fail_after

    def read(self, size: int = -1) -> bytes:
        if self.fail_after is not None and self.reads == self.fail_after:
            msg = "connection reset by peer"
            raise ConnectionResetError(msg)
        self.reads += 1
        return bytes([self.reads % 256]) * size


def test_every_byte_arrives_in_order() -> None:
    data = bytes(range(256)) * 4099  # not a multiple of the chunk size
    with read_ahead(io.BytesIO(data), 1000) as chunks:
        assert b"".join(chunks) == data


def test_a_read_error_reaches_the_consumer_after_the_chunks_before_it() -> None:
    handle = _Counted(fail_after=3)
    received = []
    with pytest.raises(ConnectionResetError, match="reset by peer"), read_ahead(handle, 10) as chunks:  # type: ignore[arg-type]
        received.extend(chunks)
    assert received == [bytes([1]) * 10, bytes([2]) * 10, bytes([3]) * 10]


def test_the_reader_holds_at_most_depth_chunks_and_stops_when_the_consumer_leaves() -> None:
    handle = _Counted()
    before = threading.active_count()
    with read_ahead(handle, 10, depth=3) as chunks:  # type: ignore[arg-type]
        first = next(iter(chunks))
        time.sleep(0.3)  # ample time to run away if the queue were unbounded
        assert handle.reads <= 1 + 3 + 1  # consumed, queued, one blocked on a full queue
    assert first == bytes([1]) * 10
    assert threading.active_count() == before, "the reader thread outlived the block"
