"""Automations as code, without a server: the windows, names and triggers `dwh automations apply` builds.

tests/test_deployments.py applies them to a real server and watches them notify.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from dwh.core.automations import (
    MANAGED_TAG,
    AutomationError,
    build_automations,
    describe_window,
    freshness_windows,
)
from dwh.core.catalog import load_catalog
from dwh.core.settings import PROJECT_DIR
from tests.conftest import PIPELINES_DIR

FLEET_CRON = "0 5,8,11,14,17,20,23 * * *"  # prefect.yaml's ingest/fleet schedule


def test_freshness_window_is_twice_each_tables_cadence_without_a_schedule() -> None:
    fleet = load_catalog("fleet", PIPELINES_DIR).model_copy(update={"schedule": None})
    windows = freshness_windows([fleet], factor=2.0)
    assert {w.table for w in windows} == {t.name for t in fleet.tables}
    for window in windows:
        assert window.within == 2 * timedelta(minutes=fleet.cadence_for(fleet.table(window.table)))
    assert describe_window(windows[0].within) == "12 h"  # fleet cadence: the 6 h night gap
    # Prefect refuses proactive windows under 10 s: clamp instead of failing to apply.
    assert freshness_windows([fleet], factor=0.0001)[0].within == timedelta(seconds=10)


def test_freshness_window_with_a_schedule_is_its_longest_gap_plus_grace() -> None:
    """The proactive backstop; the exact rule is the health flow's dwh.table.stale event."""
    fleet = load_catalog("fleet", PIPELINES_DIR)
    windows = freshness_windows([fleet], factor=2.0)
    assert {describe_window(w.within) for w in windows} == {"7 h"}  # 23:00 -> 05:00, + 60 min
    assert {describe_window(w.cadence) for w in windows} == {"6 h"}


def test_catalog_schedule_is_the_ingest_deployments_schedule() -> None:
    """Freshness follows the catalog's `schedule:`; it must be the cron the deployment runs on."""
    document = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text(encoding="utf-8"))
    (fleet,) = [d for d in document["deployments"] if d["name"] == "fleet"]
    schedule = load_catalog("fleet", PIPELINES_DIR).schedule
    assert schedule is not None
    assert fleet["schedules"] == [{"cron": schedule.cron, "timezone": schedule.timezone}]
    assert schedule.cron == FLEET_CRON


def test_shipped_automations_cover_every_table_failures_and_the_json_export() -> None:
    automations = build_automations([load_catalog("fleet", PIPELINES_DIR)], block_id=uuid.uuid4())
    by_name = {a.name: a for a in automations}
    fresh = by_name["dwh freshness: fleet.trips"]
    assert fresh.trigger.posture == "Proactive"
    assert fresh.trigger.expect == {"dwh.table.loaded"}
    assert fresh.trigger.match.root == {"prefect.resource.id": "dwh.table.fleet.trips"}
    failed = by_name["dwh: flow run failed or crashed"]
    assert failed.trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    export = by_name["dwh: export_json has not completed for an hour"]
    assert export.trigger.posture == "Proactive"
    assert export.trigger.within == timedelta(hours=1)
    assert "export_json" in json.dumps(export.trigger.model_dump(mode="json"))
    overdue = by_name["dwh: table overdue by its schedule"]
    assert overdue.trigger.expect == {"dwh.table.stale"}
    assert overdue.trigger.posture == "Reactive"
    held = by_name["dwh: table held back by an open source transaction"]
    assert held.trigger.posture == "Reactive"
    assert held.trigger.expect == {"dwh.table.held-back"}
    assert held.trigger.match.root == {"prefect.resource.id": "dwh.table.*"}
    for automation in automations:
        assert MANAGED_TAG in automation.tags
        assert [a.type for a in automation.actions] == ["send-notification"]


def test_a_misspelled_automation_key_is_refused_with_its_name(tmp_path: Path) -> None:
    shipped = yaml.safe_load((PROJECT_DIR / "deployments" / "automations.yaml").read_text(encoding="utf-8"))
    shipped["automations"][1]["trigger"]["withn"] = 5
    path = tmp_path / "automations.yaml"
    path.write_text(yaml.safe_dump(shipped), encoding="utf-8")
    with pytest.raises(AutomationError, match=r"flow run failed or crashed.*trigger\.withn"):
        build_automations([], block_id=uuid.uuid4(), path=path)
