"""The worker image without a Docker daemon: the Dockerfile parsed, and its layout replayed.

No daemon runs here, so the image is replayed: every COPY and `uv sync` (with what its RUN
then runs in the venv) of the Dockerfile into one directory (offline, from uv's cache),
which then stands in for `/opt/dwh`. The Dockerfile's final-stage `ENV` is what a
flow-run container starts with; the rehearsal's worker gets exactly that, with the
image's paths mapped here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dwh.core.settings import PROJECT_DIR

DOCKERFILE = PROJECT_DIR / "Dockerfile"
IMAGE_ROOT = "/opt/dwh"  # the image's WORKDIR, where the code and the venv live
SPOOL = "/var/tmp/dwh"  # noqa: S108 - the image's path, mapped to a private directory here; the CSV spool the docker pool mounts a volume on


@dataclass(frozen=True)
class Instruction:
    stage: int  # 0-based index of the FROM this belongs to
    keyword: str
    args: str


def instructions() -> list[Instruction]:
    """The Dockerfile as (stage, KEYWORD, arguments), continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        logical.append(pending)
        pending = ""
    stage = -1
    result = []
    for line in logical:
        keyword, _, args = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        result.append(Instruction(stage, keyword.upper(), args.strip()))
    return result


def commands(instruction: Instruction) -> list[list[str]]:
    """A RUN's commands, `a && b` split into [a, b]."""
    result: list[list[str]] = [[]]
    for word in shlex.split(instruction.args):
        if word == "&&":
            result.append([])
        else:
            result[-1].append(word)
    return result


def final_stage_env() -> dict[str, str]:
    """Every `ENV` of the final stage, `$VAR` references left as written."""
    final = max(i.stage for i in instructions())
    env: dict[str, str] = {}
    for instruction in instructions():
        if instruction.stage == final and instruction.keyword == "ENV":
            for pair in shlex.split(instruction.args):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def container_env(root: Path, spool: Path, base_path: str) -> dict[str, str]:
    """The final stage's ENV as a process here sees it: /opt/dwh is `root`, the spool `spool`."""
    env = {}
    for name, value in final_stage_env().items():
        mapped = value.replace(IMAGE_ROOT, str(root)).replace(SPOOL, str(spool))
        env[name] = re.sub(r"\$\{?PATH\}?", base_path, mapped)
    return env


def replay_image(root: Path) -> Path:
    """COPY and `uv sync` (and the rest of its RUN) of every stage into `root`, offline; returns `root`."""
    root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DWH_", "VIRTUAL_ENV", "UV_PROJECT"))}
    env |= {"UV_PYTHON_DOWNLOADS": "never", "UV_COMPILE_BYTECODE": "0"}
    for instruction in instructions():
        if instruction.keyword == "COPY" and not instruction.args.startswith("--from"):
            *sources, _ = shlex.split(instruction.args)
            for source in sources:
                origin = PROJECT_DIR / source
                if origin.is_dir():
                    shutil.copytree(
                        origin,
                        root / source,
                        ignore=shutil.ignore_patterns("__pycache__"),
                        dirs_exist_ok=True,
                    )
                else:
                    shutil.copy2(origin, root / source)
        elif instruction.keyword == "RUN" and instruction.args.startswith("uv sync"):
            for command in commands(instruction):  # uv sync, then what runs in its venv
                offline = ["--offline"] if command[:2] == ["uv", "sync"] else []
                result = subprocess.run(
                    [*command, *offline],
                    cwd=root,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=300,
                )
                if result.returncode != 0:
                    msg = f"{instruction.args}: {result.stderr[-2000:]}"
                    raise RuntimeError(msg)
    return root
