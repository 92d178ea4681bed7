"""File-armed failpoints: the protocol the fault tests use to reach a worker's flow run."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dwh.core import faults
from dwh.core.faults import FailpointError, failpoint

REACH = "from dwh.core.faults import failpoint; failpoint('load.after_commit'); print('passed')"


def _reach_in_a_process(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", REACH],
        env={**os.environ, "DWH_FAILPOINT_DIR": str(folder)},
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_kill_file_kills_only_the_first_process_that_reaches_it(tmp_path: Path) -> None:
    (tmp_path / "load.after_commit.kill").touch()

    first, second = _reach_in_a_process(tmp_path), _reach_in_a_process(tmp_path)

    assert first.returncode == -9
    assert (second.returncode, second.stdout.strip()) == (0, "passed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["load.after_commit.killed"]


def test_a_pause_file_holds_the_first_caller_until_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DWH_FAILPOINT_DIR", str(tmp_path))
    (tmp_path / "extract.streaming.pause").touch()
    caller = threading.Thread(target=failpoint, args=("extract.streaming",))

    caller.start()
    time.sleep(0.3)
    assert caller.is_alive(), "the failpoint did not wait"
    assert (tmp_path / "extract.streaming.paused").exists()
    started = time.monotonic()
    failpoint("extract.streaming")  # claimed already: a second caller passes straight on
    assert time.monotonic() - started < 0.1
    (tmp_path / "extract.streaming.resume").touch()
    caller.join(timeout=5)

    assert not caller.is_alive()


def test_a_pause_never_resumed_fails_naming_the_failpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DWH_FAILPOINT_DIR", str(tmp_path))
    monkeypatch.setattr(faults, "PAUSE_LIMIT_S", 0.2)
    (tmp_path / "load.before_commit.pause").touch()

    with pytest.raises(FailpointError, match=r"failpoint load\.before_commit paused .* never resumed"):
        failpoint("load.before_commit")


def test_unarmed_failpoints_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DWH_FAILPOINT_DIR", str(tmp_path))
    (tmp_path / "load.before_commit.kill").touch()  # another failpoint's file

    failpoint("load.after_commit")

    assert (tmp_path / "load.before_commit.kill").exists()
