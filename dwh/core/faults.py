"""Failpoints: named places where a test can make this process die or wait on the spot.

`DWH_FAILPOINTS=load.after_commit` makes the process SIGKILL itself when it reaches
that point, which is how the tests prove the crash windows of the load (before
commit, after commit before the move) lose and duplicate nothing.

`DWH_FAILPOINT_DIR=<dir>` arms failpoints with files instead, so a test can reach a
process it did not start (a flow run a pool's worker started, in the fan-out mode):
  * `<name>.kill`: the first process to reach `name` claims the file (an atomic
    rename to `<name>.killed`) and SIGKILLs itself;
  * `<name>.pause`: the first process to reach `name` claims it (`<name>.paused`) and
    waits there until `<name>.resume` exists, while the test breaks a server at that
    exact moment.
Unset, a failpoint costs two dictionary lookups.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

# A paused failpoint whose test never resumes it fails instead of hanging the run.
PAUSE_LIMIT_S = 300.0


class FailpointError(RuntimeError):
    """A paused failpoint was never resumed."""


def failpoint(name: str) -> None:
    armed = os.environ.get("DWH_FAILPOINTS")
    if armed and name in armed.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
    folder = os.environ.get("DWH_FAILPOINT_DIR")
    if folder:
        _armed_by_file(Path(folder), name)


def _claim(folder: Path, name: str, armed: str, claimed: str) -> bool:
    """True for the one process whose rename of `<name>.<armed>` succeeded."""
    try:
        (folder / f"{name}.{armed}").rename(folder / f"{name}.{claimed}")
    except FileNotFoundError:
        return False
    return True


def _armed_by_file(folder: Path, name: str) -> None:
    if _claim(folder, name, "kill", "killed"):
        os.kill(os.getpid(), signal.SIGKILL)
    if _claim(folder, name, "pause", "paused"):
        deadline = time.monotonic() + PAUSE_LIMIT_S
        while not (folder / f"{name}.resume").exists():
            if time.monotonic() > deadline:
                msg = f"failpoint {name} paused for {PAUSE_LIMIT_S:.0f} s and was never resumed ({folder})"
                raise FailpointError(msg)
            time.sleep(0.02)
