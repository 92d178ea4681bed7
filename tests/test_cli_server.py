"""`dwh` commands that run a flow without PREFECT_API_URL: Prefect's temporary server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dwh.cli.common import EPHEMERAL_STARTUP_SECONDS, _configure
from dwh.core.settings import PROJECT_DIR

DWH = str(Path(sys.executable).parent / "dwh")
TIMEOUT = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


def test_the_temporary_server_gets_a_generous_start_up_limit_unless_one_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TIMEOUT, raising=False)
    _configure()
    assert int(os.environ[TIMEOUT]) == int(EPHEMERAL_STARTUP_SECONDS) >= 120, "Prefect's own 20 s failed runs"
    monkeypatch.setenv(TIMEOUT, "45")
    _configure()
    assert os.environ[TIMEOUT] == "45", "an operator's own limit wins"


def test_a_temporary_server_that_cannot_start_is_one_line_saying_what_to_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DWH_", "AWS_"))}
    env |= {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        TIMEOUT: "0",  # what a machine too busy to start it within the limit amounts to
        "DWH_SOURCE_URL": "postgresql://nobody@127.0.0.1:1/nowhere",
        "DWH_WAREHOUSE_URL": "postgresql://nobody@127.0.0.1:1/nowhere",
        "DWH_STORAGE_URL": f"file://{tmp_path / 'storage'}",
        "COLUMNS": "300",
    }
    result = subprocess.run(
        [DWH, "datamarts", "osm_notes"],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "temporary Prefect server did not start within 0 s" in result.stderr
    assert 'dwh dev up --prefect && eval "$(dwh dev env)"' in result.stderr
