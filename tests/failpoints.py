"""A test's file-armed failpoints (dwh/core/faults.py), wherever its engine runs.

The same files reach the engine in this process (the default mode, `dwh run` in a
child) and in a flow run a pool's worker started (the fan-out mode): the fault lands
at the same point of the same code in both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


class Failpoints:
    """Arms the failpoints of one test through its DWH_FAILPOINT_DIR."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def kill_at(self, name: str) -> None:
        """The first process to reach `name` SIGKILLs itself."""
        (self.folder / f"{name}.kill").touch()

    def killed(self, name: str) -> bool:
        return (self.folder / f"{name}.killed").exists()

    def resumed(self, name: str) -> bool:
        """Whether the engine paused at `name` was let go (the pause's action returned)."""
        return (self.folder / f"{name}.resume").exists()

    @contextmanager
    def paused_at(self, name: str, action: Callable[[], None]) -> Iterator[None]:
        """Inside the block, the first process to reach `name` waits there while `action` runs.

        The block fails the test if the failpoint was never reached or `action` raised;
        the engine is let go either way, so it never waits for nothing.
        """
        paused, resume = self.folder / f"{name}.paused", self.folder / f"{name}.resume"
        done = threading.Event()
        errors: list[BaseException] = []
        ran: list[bool] = []

        def watch() -> None:
            while not paused.exists():
                if done.wait(0.02):
                    return
            try:
                action()
                ran.append(True)
            except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
                errors.append(error)
            finally:
                resume.touch()

        watcher = threading.Thread(target=watch, name=f"failpoint-{name}", daemon=True)
        (self.folder / f"{name}.pause").touch()
        watcher.start()
        try:
            yield
        finally:
            done.set()
            watcher.join(timeout=120)
            (self.folder / f"{name}.pause").unlink(missing_ok=True)  # disarmed if never reached
        if errors:
            raise errors[0]
        if not ran:
            pytest.fail(f"failpoint {name} was never reached")


@pytest.fixture
def failpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Failpoints:
    """This test's failpoint folder, in DWH_FAILPOINT_DIR before any worker starts."""
    folder = tmp_path / "failpoints"
    folder.mkdir()
    monkeypatch.setenv("DWH_FAILPOINT_DIR", str(folder))
    return Failpoints(folder)
