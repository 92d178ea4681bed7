"""Commands that run no flow start fast: they import neither Prefect nor the flows.

Importing Prefect costs seconds on a loaded machine; `dwh --help`, the dev stack and the
onboarding commands (migrate, drift, preflight, init) do not need it, even on S3 storage.
Each command runs for real in a fresh interpreter, which then reports what it imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dwh.core.settings import PROJECT_DIR
from tests.conftest import Env, seed_fleet

# Runs one `dwh` command in-process, then prints (last line) its exit code and the
# Prefect, flow and task modules the command pulled in.
PROBE = """
import json, sys
from dwh.cli import app
sys.argv = ["dwh", *sys.argv[1:]]
try:
    app()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = ("prefect", "prefect_aws", "prefect_sqlalchemy", "flows", "tasks")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print(json.dumps({"code": code, "loaded": loaded}))
"""


def _dwh(*args: str) -> tuple[int, list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=PROJECT_DIR,
        env={**os.environ, "COLUMNS": "300"},
        capture_output=True,
        text=True,
        check=False,
    )
    *output, last = done.stdout.strip().splitlines()
    report = json.loads(last)
    return report["code"], report["loaded"], "\n".join(output) + done.stderr


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
def test_commands_that_run_no_flow_import_neither_prefect_nor_the_flows(env: Env, tmp_path: Path) -> None:
    seed_fleet(200)
    proposal = tmp_path / "fleet.yaml"
    commands = {
        ("--help",): "Prefect-native extract",
        ("dev", "env", "--state-dir", str(env.stack.state_dir)): "export DWH_SOURCE_URL=",
        ("migrate", "fleet"): "repeatable steps and audits passed",
        ("drift", "fleet"): "fleet: no difference that loses data",
        ("preflight", "fleet"): "fleet: all 12 pre-deploy gates passed",
        ("init", "fleet", "--from-source", "--out", str(proposal)): f"wrote {proposal}",
    }
    for args, expected in commands.items():
        code, loaded, output = _dwh(*args)
        assert code == 0, f"dwh {' '.join(args)}:\n{output}"
        assert expected in " ".join(output.split()), f"dwh {' '.join(args)}:\n{output}"
        assert loaded == [], f"dwh {' '.join(args)} imported {loaded[:8]}"
    assert "position_history:" in proposal.read_text(encoding="utf-8")


def test_a_chains_flow_run_process_imports_only_the_chain() -> None:
    """A fan-out chain starts a process per table: it imports its own flow, not polars
    (`dwh import-csv`'s, 35 MB and ~0.4 s), the analytics flows or SQLAlchemy."""
    probe = "import json, sys, flows.ingest_table; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    roots = {m.split(".")[0] for m in loaded}
    assert not roots & {"polars", "sqlalchemy", "prefect_sqlalchemy"}, sorted(roots)
    assert [m for m in loaded if m.startswith("flows.")] == [
        "flows.api_tls",  # every flow's package: one TLS context for the API clients
        "flows.extract",
        "flows.ingest",
        "flows.ingest_table",
        "flows.load",
    ]
    assert not any(m.startswith("dwh.analytics") for m in loaded)
