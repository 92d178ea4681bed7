"""Backups of a pipeline's warehouse schemas to object storage, and restores from them.

`pg_dump -Fc` of every schema the pipeline's owner role owns (bronze, control, and any
analytical schema) streams to a spool file and is published under
`<prefix>/<pipeline>/backups/`; older backups beyond `keep` are deleted (these are
ours, unlike processed/ CSVs). A restore goes into a fresh database: `migrate` first
creates roles and schemas, then `pg_restore --clean` replaces them with the archive,
watermarks included, so the next ingest continues exactly where the backup left off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dwh.catalog import Catalog
from dwh.migrate import migrate
from dwh.settings import WarehouseSettings
from dwh.sqlfiles import read_sql
from dwh.storage import Location, spool_dir

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class BackupError(RuntimeError):
    """pg_dump/pg_restore failed or no such backup; the message says which and why."""


@dataclass(frozen=True)
class BackupResult:
    key: str
    size: int
    schemas: tuple[str, ...]
    deleted: tuple[str, ...]


def _tool(name: str) -> str:
    """The PostgreSQL 15 client matching the server, else whatever is on PATH."""
    candidate = PG_BIN / name
    found = str(candidate) if candidate.is_file() else shutil.which(name)
    if found is None:
        msg = f"{name} not found: install postgresql-client-15"
        raise BackupError(msg)
    return found


def _split_password(conninfo: str) -> tuple[str, dict[str, str]]:
    """Keep the password out of argv (visible in `ps`): pass it as PGPASSWORD instead."""
    params = conninfo_to_dict(conninfo)
    password = params.pop("password", None)
    env = {**os.environ}
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **{k: str(v) for k, v in params.items() if v is not None}), env


def _output(command: list[str], env: dict[str, str], what: str) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        msg = f"{what} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}"
        raise BackupError(msg)
    return done.stdout


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    _output(command, env, what)


def backups_prefix(location: Location, pipeline: str) -> str:
    return location.key(pipeline, "backups")


def owned_schemas(catalog: Catalog, conninfo: str, sql_dir: Path) -> list[str]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(read_sql(sql_dir / "engine" / "owned_schemas.sql"), {"role": catalog.owner_role})
        return [str(r[0]) for r in rows.fetchall()]


def backup(
    catalog: Catalog, conninfo: str, location: Location, sql_dir: Path, *, keep: int = 7
) -> BackupResult:
    """Dump the pipeline's schemas (as its owner role) and keep the newest `keep` backups."""
    schemas = owned_schemas(catalog, conninfo, sql_dir)
    if not schemas:
        msg = f"pipeline {catalog.pipeline}: role {catalog.owner_role} owns no schema; run dwh migrate first"
        raise BackupError(msg)
    now = datetime.now(UTC)
    stamp = f"{now:%Y%m%d_%H%M%S}_{now.microsecond:06d}_UTC"  # unique, and sorts by time
    key = f"{backups_prefix(location, catalog.pipeline)}/{stamp}.dump"
    target, env = _split_password(conninfo)
    with spool_dir() as spool:
        staged = location.storage.staging_path(key, spool)
        command = [_tool("pg_dump"), "--format=custom", "--file", str(staged), "--dbname", target]
        command += [f"--schema={schema}" for schema in schemas]
        _run(command, env, f"pg_dump of {catalog.pipeline}")
        size = staged.stat().st_size
        location.storage.publish(staged, key)
    existing = list_backups(location, catalog.pipeline)
    doomed = existing[:-keep] if keep > 0 else []
    for old in doomed:
        location.storage.delete(old)
    return BackupResult(key=key, size=size, schemas=tuple(schemas), deleted=tuple(doomed))


def list_backups(location: Location, pipeline: str) -> list[str]:
    """Backup keys, oldest first (the names sort by time)."""
    return [k for k in location.storage.list(backups_prefix(location, pipeline)) if k.endswith(".dump")]


def restore(
    catalog: Catalog, key: str, location: Location, settings: WarehouseSettings, sql_dir: Path
) -> list[str]:
    """Restore a backup (a key, or 'latest') into the database `settings.admin_url` names."""
    backups = list_backups(location, catalog.pipeline)
    if key == "latest":
        if not backups:
            msg = (
                f"pipeline {catalog.pipeline}: no backups under {backups_prefix(location, catalog.pipeline)}"
            )
            raise BackupError(msg)
        key = backups[-1]
    elif key not in backups:
        msg = f"pipeline {catalog.pipeline}: no backup {key} (have: {', '.join(backups) or 'none'})"
        raise BackupError(msg)
    migrate(catalog, settings, sql_dir)  # roles and schemas, owned by the pipeline's owner
    # As the owner, never the admin: anyone holding the storage keys can replace an
    # archive, and whatever SQL it carries (an index on a function, a default) then runs
    # with the owner's rights in its own schemas, not a superuser's.
    owner = make_conninfo(
        settings.admin_conninfo(),
        user=catalog.owner_role,
        password=settings.owner_password.get_secret_value() or None,
        application_name="dwh-restore",
    )
    target, env = _split_password(owner)
    with spool_dir() as spool:
        archive = spool / "restore.dump"
        with location.storage.open_read(key) as source, archive.open("wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
        # The schemas exist (migrate made them, owned by the owner, who may not create
        # schemas): restore everything in them, not the schemas themselves.
        listing = spool / "restore.list"
        toc = _output([_tool("pg_restore"), "--list", str(archive)], env, f"pg_restore --list of {key}")
        kept = [line for line in toc.splitlines(keepends=True) if " SCHEMA - " not in line]
        listing.write_text("".join(kept))
        command = [_tool("pg_restore"), "--clean", "--if-exists", "--exit-on-error", "--single-transaction"]
        command += ["--no-owner", f"--use-list={listing}", "--dbname", target, str(archive)]
        _run(command, env, f"pg_restore of {key} as {catalog.owner_role}")
    return owned_schemas(catalog, settings.admin_conninfo(), sql_dir)
