"""docs/add-a-pipeline.md runs as written: a third pipeline from YAML and SQL only."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from dwh.cli import app
from dwh.core.catalog import Mode, load_catalog
from dwh.core.settings import PROJECT_DIR
from tests.conftest import SQL_DIR, Env

pytestmark = pytest.mark.usefixtures("prefect_harness")

TUTORIAL = PROJECT_DIR / "docs" / "add-a-pipeline.md"
runner = CliRunner()


def _steps() -> list[str]:
    """The commands between the tutorial markers, in order."""
    text = TUTORIAL.read_text().split("<!-- tutorial:start -->", 1)[1].split("<!-- tutorial:end -->", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def _snippet(language: str, after: str) -> str:
    text = TUTORIAL.read_text().split(after, 1)[1]
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)[0]


def _run(env: Env, step: str) -> str:
    """A `uv run dwh …` line through the real CLI, a `psql … -c` line against the source."""
    if step.startswith("psql "):
        env.query("source", shlex.split(step)[-1])
        return ""
    assert step.startswith("uv run dwh "), f"unexpected tutorial step: {step}"
    result = runner.invoke(app, shlex.split(step)[3:], env={"COLUMNS": "300"})
    output = " ".join(re.sub("[\u2500-\u257f]", " ", result.output).split())
    assert result.exit_code == 0, f"{step} exited {result.exit_code}: {output}"
    return output


def _count(env: Env, db: str, table: str) -> int:
    schema = "public" if db == "source" else "shop_bronze"
    return int(env.query(db, f"SELECT count(*) FROM {schema}.{table}")[0][0])  # type: ignore[arg-type]


def test_tutorial_takes_the_shop_from_empty_config_to_loaded_bronze_and_a_schedule(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shop's catalog and migrations go to a copy, so the repository stays as shipped
    # (catalogs under pipelines/ are picked up by automations, health and deployments).
    pipelines, sql_dir = tmp_path / "pipelines", tmp_path / "sql"
    pipelines.mkdir()
    shutil.copytree(SQL_DIR, sql_dir)
    monkeypatch.setenv("DWH_PIPELINES_DIR", str(pipelines))
    monkeypatch.setenv("DWH_SQL_DIR", str(sql_dir))
    steps = _steps()
    assert [s.split()[3] for s in steps if s.startswith("uv run dwh")] == [
        "seed-source",
        "init",
        "migrations",
        "migrate",
        "preflight",
        "run",
        "verify",
        "drift",
    ]

    outputs = {step: _run(env, step) for step in steps}

    catalog = load_catalog("shop", pipelines)
    decided = {t.name: (t.mode, t.watermark, t.key, t.geometry) for t in catalog.tables}
    assert decided == {
        "customers": (Mode.SNAPSHOT, None, ("customer_id",), ()),
        "products": (Mode.SNAPSHOT, None, ("product_id",), ()),
        "orders": (Mode.APPEND, "created_at", ("order_id",), ()),
        "deliveries": (Mode.APPEND, "inserted_at", ("order_id",), ("location",)),
    }
    proposal = (pipelines / "shop.yaml").read_text()
    for line in _snippet("yaml", "An excerpt:").splitlines():
        if line.strip().startswith(("watermark:", "geometry:")):
            assert line in proposal, line
    assert (sql_dir / "shop" / "migrations" / "0100_bronze.sql").is_file()
    for table in ("customers", "products", "orders", "deliveries"):
        assert _count(env, "wh", table) == _count(env, "source", table) > 0, table
    assert env.query(
        "wh", "SELECT count(*) FROM shop_bronze.deliveries WHERE ST_SRID(location) = 4326"
    ) == env.query("source", "SELECT count(*) FROM public.deliveries WHERE location IS NOT NULL")
    assert "shop: all" in outputs["uv run dwh preflight shop"]
    assert "customers phone added in source warn" in outputs["uv run dwh drift shop"]

    _schedule(_snippet("yaml", "## 7. Schedule it"))


def _schedule(snippet: str) -> None:
    """The deployment snippet fits prefect.yaml and registers with its schedule and parameters."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415

    from flows.ingest import ingest  # noqa: PLC0415

    config: dict[str, Any] = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text() + "\n" + snippet)
    (entry,) = [d for d in config["deployments"] if d["name"] == "shop"]
    assert entry["entrypoint"] == "flows/ingest.py:ingest"
    assert "dwh" in entry["tags"]  # the failure automation keys on it
    assert entry["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    (schedule,) = entry["schedules"]
    deployment = ingest.to_deployment(
        name=entry["name"],
        parameters=entry["parameters"],
        cron=schedule["cron"],
        tags=entry["tags"],
        description=entry["description"],
    )
    deployment_id = deployment.apply()
    with get_client(sync_client=True) as client:
        stored = client.read_deployment(deployment_id)
    assert stored.parameters == {"pipeline": "shop"}
    assert [s.schedule.cron for s in stored.schedules] == ["15 * * * *"]  # type: ignore[union-attr]
