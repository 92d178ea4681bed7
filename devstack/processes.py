"""Process supervision for the dev stack: start detached, wait until ready, recognise, stop."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from devstack.state import (
    DB_OS_USER,
    HOST,
    LOG_TAIL_LINES,
    STOP_GRACE_SECONDS,
    DevStackError,
    Service,
    ServiceName,
    pgdata_dir,
)

if TYPE_CHECKING:
    from collections.abc import Callable


# Probes go straight to 127.0.0.1: a proxy from the environment must never see them.
LOCAL_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def process_command(pid: int) -> str | None:
    """A live process's NUL-separated command line; None when gone (or a zombie)."""
    if pid <= 0:
        return None
    # Reap it if it is our own exited child (tests run up and down in one process).
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    proc = Path("/proc") / str(pid)
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command = (proc / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    if state == "Z":
        return None
    return "\0" + command.decode(errors="replace")


def command_marker(service: Service, state_dir: Path) -> str:
    """Arguments the process's command line must hold for us to treat the pid as ours.

    NUL-joined like /proc/<pid>/cmdline, so `-D /x/pgdata` cannot match `/x/pgdata2`.
    """
    if service.name == "postgres":
        args = ["", "-D", str(pgdata_dir(state_dir))]
    elif service.name == "moto":
        args = ["moto_server", "-H", HOST, "-p", str(service.port)]
    else:
        args = [
            "prefect",
            "server",
            "start",
            "--host",
            HOST,
            "--port",
            str(service.port),
        ]
    return "\0".join([*args, ""])


def is_ours(service: Service, state_dir: Path) -> bool:
    """True when the recorded pid still runs the recorded command: pids get reused."""
    command = process_command(service.pid)
    return command is not None and command_marker(service, state_dir) in command


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_command(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def signal_group(pid: int, signum: signal.Signals) -> None:
    """Signal the session `up` created for the service, so its children go too."""
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def log_tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(lines[-LOG_TAIL_LINES:])


def run_checked(
    command: list[str],
    what: str,
    *,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run a command; on failure raise with its stderr and the last lines of `log`."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    except FileNotFoundError as err:
        raise DevStackError(f"{what} failed: {command[0]} not found") from err
    if result.returncode == 0:
        return result.stdout
    message = f"{what} failed (exit {result.returncode}): {shlex.join(command)}"
    output = (result.stderr or result.stdout).strip()
    if output:
        message += f"\n{output}"
    if log is not None:
        message += f"\nlast lines of {log}:\n{log_tail(log)}"
    raise DevStackError(message)


def as_db_user(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", DB_OS_USER, "--", *command]
    return command


def give_to_db_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, DB_OS_USER, DB_OS_USER)


def start_detached(
    service: ServiceName,
    command: list[str],
    log: Path,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a service in its own session: it outlives us and stops as a group."""
    with log.open("ab") as out:
        try:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        except FileNotFoundError as err:
            raise DevStackError(f"cannot start {service}: {command[0]} not found") from err


def wait_ready(
    process: subprocess.Popen[bytes],
    service: Service,
    ready: Callable[[], bool],
    timeout: float,
) -> None:
    """Wait for `ready()`; on failure kill the process, so `up` leaves no orphan."""
    deadline = time.monotonic() + timeout
    while not ready():
        problem = None
        if process.poll() is not None:
            problem = f"exited with code {process.returncode}"
        elif time.monotonic() > deadline:
            problem = f"did not answer within {timeout:.0f} s"
        if problem is not None:
            signal_group(process.pid, signal.SIGKILL)
            process.wait()
            raise DevStackError(
                f"{service.name} on port {service.port} {problem}; "
                f"last lines of {service.log}:\n{log_tail(service.log)}"
            )
        time.sleep(0.2)


def stop_detached(service: Service, signals: tuple[signal.Signals, ...]) -> None:
    for signum in (*signals, signal.SIGKILL):
        signal_group(service.pid, signum)
        if wait_gone(service.pid, STOP_GRACE_SECONDS):
            return
    raise DevStackError(f"{service.name} (pid {service.pid}) survived SIGKILL")


def http_status(url: str) -> int | None:
    """The status `url` answers with, or None while nothing listens there yet."""
    try:
        with LOCAL_HTTP.open(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


def venv_script(name: str) -> Path:
    """A console script next to the running interpreter, i.e. in the project's venv."""
    return Path(sys.executable).parent / name
