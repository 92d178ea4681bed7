"""Failpoints: named places where a test can make this process die on the spot.

`DWH_FAILPOINTS=load.after_commit` makes the process SIGKILL itself when it reaches
that point, which is how the tests prove the crash windows of the load (before
commit, after commit before the move) lose and duplicate nothing. Unset, a failpoint
costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal


def failpoint(name: str) -> None:
    armed = os.environ.get("DWH_FAILPOINTS")
    if armed and name in armed.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
