"""The load subflow follows the extract: each part is copied once published, committed once uploaded.

The feed's unit tests need no service; the integration test pauses an extract half-way
and finds the load's rows already copied into bronze, uncommitted, while the run log
still says `extracting`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dwh.ingest.feed import FeedAbandonedError, FollowedKeys, PartFeed
from flows.ingest import ingest
from tests.conftest import Env, rows_loaded, seed_fleet
from tests.failpoints import Failpoints
from tests.outages import small_parts_catalog
from tests.waiting import wait_for

# The streaming failpoint fires every 16,384 rows; parts of 2,000 rows are published before it.
STREAMED_ROWS = 20_000
SMALL_PARTS = 2_000
IDLE_LIMIT = "ALTER DATABASE \"{warehouse}\" SET idle_in_transaction_session_timeout = '300ms'"


def test_a_follower_gets_each_part_as_it_is_published_and_stops_at_upload() -> None:
    feed = PartFeed()
    feed.started(1, repair=False)
    got: list[str] = []
    first_read = threading.Event()

    def follow() -> None:
        for key in feed.keys(1):
            got.append(key)
            first_read.set()

    follower = threading.Thread(target=follow)
    follower.start()
    feed.published(1, "a")
    assert first_read.wait(5), "the first part was not handed over before the second was written"
    assert got == ["a"]
    feed.published(1, "b")
    feed.ended(1, uploaded=True)
    follower.join(5)
    assert not follower.is_alive()
    assert got == ["a", "b"]
    assert list(FollowedKeys(feed, 1)) == ["a", "b"], "a retried load reads every part again"


def test_a_failed_attempt_abandons_its_follower_and_the_retry_is_followed() -> None:
    feed = PartFeed()
    feed.started(1, repair=False)
    feed.published(1, "run1-part1")
    keys = feed.keys(1)
    assert next(keys) == "run1-part1"
    feed.ended(1, uploaded=False)
    with pytest.raises(FeedAbandonedError, match="run 1"):
        next(keys)

    current: list[tuple[int, bool] | None] = []
    waiter = threading.Thread(target=lambda: current.append(feed.current_run()))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive(), "a failed newest run must not be followed: a retry may still start"
    feed.started(2, repair=True)
    waiter.join(5)
    assert current == [(2, True)]
    assert feed.failed_runs() == [1]


def test_a_feed_closed_mid_run_abandons_it_and_offers_no_other() -> None:
    feed = PartFeed()
    feed.started(7, repair=False)
    feed.close()
    with pytest.raises(FeedAbandonedError):
        list(feed.keys(7))
    feed.ended(7, uploaded=False)
    assert feed.current_run() is None


def test_a_feed_closed_before_any_run_offers_none() -> None:
    feed = PartFeed()
    feed.close()
    assert feed.current_run() is None


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("storage_kind", ["file", "s3"], indirect=True)
def test_parts_load_while_the_extract_still_writes_and_commit_after_it_uploaded(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failpoints: Failpoints
) -> None:
    small_parts_catalog(tmp_path, monkeypatch, SMALL_PARTS)
    env.migrate()
    seed_fleet(STREAMED_ROWS)
    # A warehouse that ends sessions idle in a transaction (the runbook's cure for leaky
    # clients): the load waits for parts that way by design and must not be ended.
    env.query("wh", IDLE_LIMIT.format(warehouse=env.warehouse_db))

    def load_writing() -> list[tuple[object, ...]]:
        """The sessions holding the load's lock on bronze (its COPY ran, uncommitted)."""
        return env.query(
            "wh",
            "SELECT pid FROM pg_locks WHERE relation = 'fleet_bronze.position_history'::regclass"
            " AND mode = 'RowExclusiveLock' AND granted AND pid <> pg_backend_pid()",
        )

    def bronze_written_uncommitted() -> None:
        """Paused mid-extract: the load already wrote into bronze, and committed nothing."""
        writer = wait_for(
            "the load writing into bronze while the extract is paused", load_writing, timeout=60, interval=0.1
        )
        time.sleep(1.0)  # well past the warehouse's idle limit
        assert load_writing() == writer, "the load's session was ended while it waited for parts"
        statuses = env.query(
            "wh", "SELECT status FROM fleet_control.extract_runs WHERE table_name = 'position_history'"
        )
        assert statuses == [("extracting",)]
        assert env.query("wh", "SELECT count(*) FROM fleet_bronze.position_history") == [(0,)]

    with failpoints.paused_at("extract.streaming", bronze_written_uncommitted):
        summary = ingest("fleet", tables=["position_history"])

    assert rows_loaded(summary) == {"position_history": STREAMED_ROWS}
    runs = env.query(
        "wh",
        "SELECT status, rows_extracted, rows_loaded, parts FROM fleet_control.extract_runs"
        " WHERE table_name = 'position_history'",
    )
    assert runs == [("loaded", STREAMED_ROWS, STREAMED_ROWS, STREAMED_ROWS // SMALL_PARTS)]
    source = env.query(
        "source", "SELECT count(*), count(DISTINCT (device_id, gps_time)) FROM public.position_history"
    )
    assert (
        env.query(
            "wh", "SELECT count(*), count(DISTINCT (device_id, gps_time)) FROM fleet_bronze.position_history"
        )
        == source
    )
    assert env.location_keys("fleet", "exports") == []
    assert len(env.location_keys("fleet", "processed", "position_history")) == STREAMED_ROWS // SMALL_PARTS
