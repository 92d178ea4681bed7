"""The Grafana dashboard's panels run, through the ro role, against a loaded warehouse."""

from __future__ import annotations

import json
from datetime import datetime

import psycopg
import pytest

from dwh.core.schedule import load_due
from dwh.core.settings import PROJECT_DIR, WarehouseSettings
from flows.ingest import ingest
from tests.conftest import Env, seed_fleet

pytestmark = pytest.mark.usefixtures("prefect_harness")
DASHBOARD = PROJECT_DIR / "deployments" / "grafana" / "dashboards" / "dwh.json"


def test_every_panel_query_answers_as_the_ro_role_after_a_run(env: Env) -> None:
    env.migrate()
    counts = seed_fleet(1000)
    ingest("fleet", tables=["devices", "trips"])
    env.query(
        "wh",
        "UPDATE fleet_control.extract_runs SET status = 'failed', error_message = 'boom' WHERE table_name = 'devices'",
    )
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert [p["title"].split(" ")[0] for p in panels] == ["Freshness", "Recent", "Rows"]

    answers = {}
    with psycopg.connect(WarehouseSettings().ro_conninfo("fleet"), autocommit=True) as conn:  # type: ignore[call-arg]
        for panel in panels:
            (target,) = panel["targets"]
            query = target["rawSql"].replace("${pipeline}", "fleet")
            answers[panel["id"]] = conn.execute(query).fetchall()

    # Freshness: the same rule as health and verify (dwh/core/schedule.py), stored by the load.
    assert [(r[0], r[3] < 0) for r in answers[1]] == [("trips", True)]
    (finished, due), *_ = env.query(
        "wh",
        "SELECT r.run_finished_at, w.due_at FROM fleet_control.extract_runs AS r"
        " JOIN fleet_control.extract_watermarks AS w USING (table_name) WHERE r.table_name = 'trips'",
    )
    catalog = env.catalog()
    assert isinstance(finished, datetime)
    assert due == load_due(catalog, catalog.table("trips"), finished).by
    env.query("wh", "UPDATE fleet_control.extract_watermarks SET due_at = now() - interval '90 minutes'")
    with psycopg.connect(WarehouseSettings().ro_conninfo("fleet"), autocommit=True) as conn:  # type: ignore[call-arg]
        (overdue,) = conn.execute(
            panels[0]["targets"][0]["rawSql"].replace("${pipeline}", "fleet")
        ).fetchall()
    assert overdue[0] == "trips"
    assert 1.4 < float(overdue[3]) < 1.6  # hours past due: red (threshold 0)
    assert [(r[1], r[4]) for r in answers[2]] == [("devices", "boom")]
    assert [(r[1], int(r[2])) for r in answers[3]] == [("trips", counts["trips"])]
