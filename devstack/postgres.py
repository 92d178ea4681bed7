"""The dev stack's PostgreSQL 15 + PostGIS cluster: initdb, start, stop, bootstrap databases."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import psycopg
from psycopg import sql

from devstack.processes import as_db_user, free_port, give_to_db_user, log_tail, run_checked, wait_gone
from devstack.state import (
    HOST,
    PG_BIN,
    POSTGIS_PACKAGE,
    PREFECT_DATABASE,
    READER_ROLE,
    SOURCE_DATABASE,
    SOURCE_ROLE,
    STOP_GRACE_SECONDS,
    SUPERUSER,
    TEMPLATE_DATABASE,
    WAREHOUSE_DATABASE,
    DevStackError,
    Passwords,
    Service,
    pgdata_dir,
    socket_dir_for,
    write_private,
)

if TYPE_CHECKING:
    from psycopg.rows import TupleRow


def ensure_postgis() -> None:
    """Install PostGIS for PostgreSQL 15 with apt when its extension is missing."""
    control = pg_sharedir() / "extension" / "postgis.control"
    if control.exists():
        return
    if os.geteuid() != 0:
        raise DevStackError(
            f"PostGIS is not installed ({control} is missing) and installing it "
            f"needs root: run `sudo apt-get install -y {POSTGIS_PACKAGE}`"
        )
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run_checked(["apt-get", "update"], "apt-get update", env=apt_env)
    run_checked(
        ["apt-get", "install", "-y", POSTGIS_PACKAGE],
        f"installing {POSTGIS_PACKAGE}",
        env=apt_env,
    )
    if not control.exists():
        raise DevStackError(f"{POSTGIS_PACKAGE} was installed but {control} is still missing")


def pg_sharedir() -> Path:
    pg_config = PG_BIN / "pg_config"
    if not pg_config.exists():
        raise DevStackError(f"PostgreSQL 15 is not installed: {pg_config} is missing")
    return Path(run_checked([str(pg_config), "--sharedir"], "pg_config --sharedir").strip())


def server_config(port: int, socket_dir: Path) -> str:
    """postgresql.conf additions: a throwaway cluster trades durability for speed."""
    settings = {
        "listen_addresses": HOST,
        "port": str(port),
        "unix_socket_directories": str(socket_dir),
        # The socket is for pg_ctl (the cluster's OS user); everyone else uses TCP with a password.
        "unix_socket_permissions": "0700",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "shared_buffers": "256MB",
        "max_connections": "200",
        "wal_level": "minimal",
        "max_wal_senders": "0",
        "logging_collector": "off",
    }
    quoted = {name: "'" + value.replace("'", "''") + "'" for name, value in settings.items()}
    return "".join(f"{name} = {value}\n" for name, value in quoted.items())


# Over the socket only the cluster's own OS user, as the superuser (peer, not trust: the
# socket would otherwise make any local account a superuser without a password).
PG_HBA = f"""\
# TYPE  DATABASE  USER        ADDRESS       METHOD
local   all       {SUPERUSER}                  peer
host    all       all         {HOST}/32  scram-sha-256
"""


def write_db_file(path: Path, text: str) -> None:
    write_private(path, text.encode())
    give_to_db_user(path)


def init_cluster(state_dir: Path, superuser_password: str) -> None:
    pgdata = pgdata_dir(state_dir)
    if (pgdata / "PG_VERSION").exists():
        return
    pwfile = state_dir / ".superuser-password"
    write_db_file(pwfile, superuser_password + "\n")
    initdb = [
        str(PG_BIN / "initdb"),
        f"--pgdata={pgdata}",
        f"--username={SUPERUSER}",
        f"--pwfile={pwfile}",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--no-locale",
        "--no-sync",
    ]
    try:
        run_checked(as_db_user(initdb), f"initdb in {pgdata}")
    finally:
        pwfile.unlink(missing_ok=True)
    write_db_file(pgdata / "pg_hba.conf", PG_HBA)
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write("\ninclude 'dwh_dev.conf'\n")


def start_postgres(state_dir: Path, superuser_password: str) -> Service:
    init_cluster(state_dir, superuser_password)
    pgdata = pgdata_dir(state_dir)
    log = state_dir / "postgres.log"
    port = free_port()
    socket_dir = socket_dir_for(state_dir)
    socket_dir.mkdir(mode=0o700, exist_ok=True)
    give_to_db_user(socket_dir)
    write_db_file(pgdata / "dwh_dev.conf", server_config(port, socket_dir))
    start = pg_ctl(state_dir, "-l", str(log), "-w", "-t", "60", "start")
    run_checked(start, f"starting PostgreSQL on port {port}", log=log)
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    return Service(name="postgres", pid=pid, port=port, log=log)


def pg_ctl(state_dir: Path, *args: str) -> list[str]:
    return as_db_user([str(PG_BIN / "pg_ctl"), "-D", str(pgdata_dir(state_dir)), *args])


def stop_postgres(service: Service, state_dir: Path) -> None:
    stop = pg_ctl(state_dir, "-m", "fast", "-w", "stop")
    run_checked(stop, "stopping PostgreSQL", log=service.log)
    if not wait_gone(service.pid, STOP_GRACE_SECONDS):
        raise DevStackError(f"PostgreSQL (pid {service.pid}) still runs after pg_ctl stop")


def postgres_ready(port: int) -> bool:
    command = [str(PG_BIN / "pg_isready"), "-q", "-h", HOST, "-p", str(port)]
    return subprocess.run(command, check=False).returncode == 0


def require_ready(postgres: Service) -> None:
    """A server that runs but refuses connections needs a look, not a second server."""
    if not postgres_ready(postgres.port):
        raise DevStackError(
            f"PostgreSQL (pid {postgres.pid}) runs but refuses connections on port "
            f"{postgres.port}; last lines of {postgres.log}:\n{log_tail(postgres.log)}"
        )


def connect_as_superuser(port: int, passwords: Passwords, dbname: str) -> psycopg.Connection[TupleRow]:
    return psycopg.connect(
        host=HOST,
        port=port,
        user=SUPERUSER,
        password=passwords.superuser,
        dbname=dbname,
        autocommit=True,
        application_name="dwh-devstack",
    )


def bootstrap_databases(port: int, passwords: Passwords) -> None:
    """Create the missing roles and databases; every step is safe to repeat."""
    try:
        with connect_as_superuser(port, passwords, "postgres") as conn:
            ensure_source_role(conn, SOURCE_ROLE, passwords.source_app)
            ensure_source_role(conn, READER_ROLE, passwords.source_reader)
            ensure_database(conn, TEMPLATE_DATABASE, SUPERUSER, template="template0")
        with connect_as_superuser(port, passwords, TEMPLATE_DATABASE) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            grant_reads(conn)  # every database made from the template inherits it
        with connect_as_superuser(port, passwords, "postgres") as conn:
            name = sql.Identifier(TEMPLATE_DATABASE)
            conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(name))
            ensure_database(conn, SOURCE_DATABASE, SOURCE_ROLE, template=TEMPLATE_DATABASE)
            ensure_database(conn, WAREHOUSE_DATABASE, SUPERUSER, template=TEMPLATE_DATABASE)
            ensure_database(conn, PREFECT_DATABASE, SUPERUSER, template="template0")
        for dbname in (SOURCE_DATABASE, WAREHOUSE_DATABASE):
            with connect_as_superuser(port, passwords, dbname) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        with connect_as_superuser(port, passwords, SOURCE_DATABASE) as conn:
            grant_reads(conn)  # a source database made before the template had it
    except psycopg.Error as err:
        raise DevStackError(f"setting up databases on {HOST}:{port} failed: {err}") from err


def ensure_source_role(conn: psycopg.Connection[TupleRow], name: str, password: str) -> None:
    role = sql.Identifier(name)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone()
    verb = sql.SQL("ALTER") if exists else sql.SQL("CREATE")
    conn.execute(sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(verb, role, sql.Literal(password)))
    conn.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(role))


def grant_reads(conn: psycopg.Connection[TupleRow]) -> None:
    """The reader may SELECT every table in `public`, those created later by the app or admin too."""
    reader = sql.Identifier(READER_ROLE)
    conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(reader))
    later = sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT ON TABLES TO {}")
    for creator in (SOURCE_ROLE, SUPERUSER):
        conn.execute(later.format(sql.Identifier(creator), reader))


def ensure_database(conn: psycopg.Connection[TupleRow], name: str, owner: str, *, template: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    if exists:
        return
    conn.execute(
        sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(owner), sql.Identifier(template)
        )
    )


def prefect_database_url(port: int, passwords: Passwords, database: str = PREFECT_DATABASE) -> str:
    """A Prefect server's database (asyncpg is the driver Prefect's server uses)."""
    superuser_pw = quote(passwords.superuser, safe="")
    return f"postgresql+asyncpg://{SUPERUSER}:{superuser_pw}@{HOST}:{port}/{quote(database)}"


def postgres_env(port: int, passwords: Passwords) -> dict[str, str]:
    address = f"{HOST}:{port}"
    app_pw = quote(passwords.source_app, safe="")
    reader_pw = quote(passwords.source_reader, safe="")
    superuser_pw = quote(passwords.superuser, safe="")
    app = f"{SOURCE_ROLE}:{app_pw}@{address}/{SOURCE_DATABASE}"
    reader = f"{READER_ROLE}:{reader_pw}@{address}/{SOURCE_DATABASE}"
    admin = f"{SUPERUSER}:{superuser_pw}@{address}/{WAREHOUSE_DATABASE}"
    return {
        # The flows read as a role that cannot write the source (the guard refuses one
        # that can); sample rows are written as the application itself.
        "DWH_SOURCE_URL": f"postgresql://{reader}",
        "DWH_SEED_URL": f"postgresql://{app}",
        # No user: flows connect as <pipeline>_owner with DWH_WAREHOUSE_OWNER_PASSWORD.
        "DWH_WAREHOUSE_URL": f"postgresql://{address}/{WAREHOUSE_DATABASE}",
        "DWH_WAREHOUSE_ADMIN_URL": f"postgresql://{admin}",
        "DWH_WAREHOUSE_OWNER_PASSWORD": passwords.warehouse_owner,
        "DWH_WAREHOUSE_RO_PASSWORD": passwords.warehouse_ro,
    }
