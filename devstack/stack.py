"""The dev stack as a whole: `up`, `down` and `env` over the recorded services."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

from devstack.postgres import (
    bootstrap_databases,
    ensure_postgis,
    postgres_env,
    postgres_ready,
    prefect_database_url,
    require_ready,
    start_postgres,
    stop_postgres,
)
from devstack.processes import give_to_db_user, is_ours, stop_detached
from devstack.services import start_moto, start_prefect, storage_env
from devstack.state import (
    DB_OS_USER,
    DEFAULT_STATE_DIR,
    HOST,
    DevStackError,
    Service,
    ServiceName,
    StackInfo,
    StackRecord,
    load_record,
    new_passwords,
    save_record,
    socket_dir_for,
    stack_file,
)


def up(state_dir: Path = DEFAULT_STATE_DIR, *, s3: bool = False, prefect: bool = False) -> StackInfo:
    """Start the stack: reuse what runs, start only the missing services asked for."""
    state_dir = state_dir.resolve()
    ensure_postgis()
    prepare_state_dir(state_dir)
    record = load_record(state_dir) or StackRecord(passwords=new_passwords())
    record = replace(record, services=live_services(record, state_dir))
    save_record(state_dir, record)
    record, started = start_missing(state_dir, record, ["postgres"])
    postgres = record.services["postgres"]
    require_ready(postgres)
    # Before the other services: the Prefect server keeps its state in this cluster.
    bootstrap_databases(postgres.port, record.passwords)
    wanted: list[ServiceName] = ["moto"] if s3 else []
    wanted += ["prefect"] if prefect else []
    record, also = start_missing(state_dir, record, wanted)
    return stack_info(state_dir, record, [*started, *also])


def start_missing(
    state_dir: Path, record: StackRecord, names: list[ServiceName]
) -> tuple[StackRecord, list[ServiceName]]:
    """Start those of `names` not running; the record after, and which were started."""
    started: list[ServiceName] = []
    for name in names:
        if name in record.services:
            continue
        service = start_service(name, state_dir, record)
        # Recorded at once, so `down` can stop it even if a later service fails.
        record = replace(record, services={**record.services, name: service})
        save_record(state_dir, record)
        started.append(name)
    return record, started


def down(state_dir: Path = DEFAULT_STATE_DIR, *, purge: bool = False) -> list[str]:
    """Stop what `up` started, newest first; return the names of those stopped."""
    state_dir = state_dir.resolve()
    record = load_record(state_dir)
    stopped: list[str] = []
    if record is not None:
        services = reversed(record.services.values())
        stopped = [service.name for service in services if stop_service(service, state_dir)]
        save_record(state_dir, replace(record, services={}))
    if purge:
        purge_state_dir(state_dir)
    return stopped


def env(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, str]:
    """The variables `dwh.core.settings` reads, pointing at the running stack."""
    state_dir = state_dir.resolve()
    record = load_record(state_dir)
    if record is None:
        raise DevStackError(f"no dev stack in {state_dir}: run `dwh dev up` first")
    running = live_services(record, state_dir)
    postgres = running.get("postgres")
    if postgres is None or not postgres_ready(postgres.port):
        raise DevStackError(
            f"the dev stack in {state_dir} is down (PostgreSQL is not running): run `dwh dev up`"
        )
    variables = postgres_env(postgres.port, record.passwords)
    variables |= storage_env(state_dir, running.get("moto"))
    prefect = running.get("prefect")
    if prefect is not None:
        variables["PREFECT_API_URL"] = f"http://{HOST}:{prefect.port}/api"
    return variables


def prepare_state_dir(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "storage").mkdir(exist_ok=True)
    give_to_db_user(state_dir)
    if os.geteuid() != 0:
        return
    probe = ["runuser", "-u", DB_OS_USER, "--", "test", "-w", str(state_dir)]
    if subprocess.run(probe, check=False).returncode != 0:
        raise DevStackError(
            f"the {DB_OS_USER} OS user cannot write to {state_dir}: each parent "
            "directory must be traversable (chmod o+x), or pick another --state-dir"
        )


def live_services(record: StackRecord, state_dir: Path) -> dict[ServiceName, Service]:
    return {name: s for name, s in record.services.items() if is_ours(s, state_dir)}


def stack_info(state_dir: Path, record: StackRecord, started: list[ServiceName]) -> StackInfo:
    return StackInfo(
        state_dir=state_dir,
        postgres=record.services["postgres"],
        s3=record.services.get("moto"),
        prefect=record.services.get("prefect"),
        started=tuple(started),
        passwords=record.passwords,
    )


def purge_state_dir(state_dir: Path) -> None:
    """Delete the state dir, refusing one that does not look like a dev stack's."""
    if state_dir.exists():
        if not stack_file(state_dir).exists() and any(state_dir.iterdir()):
            raise DevStackError(
                f"refusing to delete {state_dir}: it holds no stack.json, so it may not be a dev stack"
            )
        shutil.rmtree(state_dir)
    socket_dir = socket_dir_for(state_dir)
    if socket_dir != state_dir:
        shutil.rmtree(socket_dir, ignore_errors=True)


def start_service(name: ServiceName, state_dir: Path, record: StackRecord) -> Service:
    if name == "postgres":
        return start_postgres(state_dir, record.passwords.superuser)
    if name == "moto":
        return start_moto(state_dir)
    postgres = record.services["postgres"]
    return start_prefect(state_dir, prefect_database_url(postgres.port, record.passwords))


def stop_service(service: Service, state_dir: Path) -> bool:
    """Stop one recorded service if it still runs; False when nothing was to stop."""
    if not is_ours(service, state_dir):
        return False
    if service.name == "postgres":
        stop_postgres(service, state_dir)
    elif service.name == "moto":
        stop_detached(service, (signal.SIGTERM,))
    else:
        # SIGINT is uvicorn's clean shutdown; SIGTERM is the fallback when it hangs.
        stop_detached(service, (signal.SIGINT, signal.SIGTERM))
    return True
