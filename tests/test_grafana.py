"""The Grafana dashboard's panels run, through the ro role, against a loaded warehouse."""

from __future__ import annotations

import json

import psycopg
import pytest

from dwh.seed import seed_source
from dwh.settings import PROJECT_DIR, SourceSettings, WarehouseSettings
from flows.ingest import ingest
from tests.conftest import SQL_DIR, Env

pytestmark = pytest.mark.usefixtures("prefect_harness")
DASHBOARD = PROJECT_DIR / "deployments" / "grafana" / "dashboards" / "dwh.json"


def test_every_panel_query_answers_as_the_ro_role_after_a_run(env: Env) -> None:
    env.migrate()
    counts = seed_source(SourceSettings().conninfo(), "fleet", rows=1000, sql_dir=SQL_DIR)  # type: ignore[call-arg]
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

    assert [(r[0], r[2] < 4) for r in answers[1]] == [("trips", True)]
    assert [(r[1], r[4]) for r in answers[2]] == [("devices", "boom")]
    assert [(r[1], int(r[2])) for r in answers[3]] == [("trips", counts["trips"])]
