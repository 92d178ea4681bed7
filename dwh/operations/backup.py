"""Backups of a pipeline's warehouse schemas to object storage, and restores from them.

`pg_dump -Fc` of every schema the pipeline's owner role owns (bronze, control, and any
analytical schema) streams to a spool file and is published under
`<backup url>/<pipeline>/` (DWH_BACKUP_URL, outside the CSV parts' prefix); older
backups beyond `keep` are deleted (these are ours, unlike processed/ CSVs). Each
archive's sha256 goes into the pipeline's backup ledger, a table the flows may add
lines to but never change, and a restore refuses an archive that does not match its
line: whoever holds the storage keys can replace an archive, not its record.

A restore goes into a fresh database: `migrate` first creates roles and schemas, then
`pg_restore --clean` replaces them with the archive, watermarks included, so the next
ingest continues exactly where the backup left off.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dwh.core.catalog import Catalog
from dwh.core.migrate import migrate
from dwh.core.settings import BackupSettings, StorageSettings, WarehouseSettings
from dwh.core.sqlfiles import pipeline_parts, read_sql, render
from dwh.ingest.storage import Location, open_location, spool_dir

PG_BIN = Path("/usr/lib/postgresql/15/bin")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class BackupError(RuntimeError):
    """pg_dump/pg_restore failed or no such backup; the message says which and why."""


@dataclass(frozen=True)
class BackupResult:
    key: str
    size: int
    sha256: str
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


def backup_location() -> Location:
    """Where archives live: DWH_BACKUP_URL, reached with the storage credentials."""
    storage = StorageSettings()
    return open_location(storage, BackupSettings().resolved(storage))


def backups_prefix(location: Location, pipeline: str) -> str:
    return location.key(pipeline)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ledger(catalog: Catalog, conninfo: str, sql_dir: Path, keys: list[str]) -> dict[str, str]:
    """The recorded sha256 of each of `keys` that has a line; empty before the first migrate."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        table = f"{catalog.ledger_schema}.backups"
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,):
            return {}
        query = render(sql_dir / "engine" / "backup_ledger.sql", **pipeline_parts(catalog))
        return {str(k): str(h) for k, h in conn.execute(query, {"keys": keys}).fetchall()}


def _record(catalog: Catalog, conninfo: str, sql_dir: Path, *, key: str, sha256: str, size: int) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        query = render(sql_dir / "engine" / "backup_record.sql", **pipeline_parts(catalog))
        conn.execute(query, {"key": key, "sha256": sha256, "bytes": size})


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
        sha256 = _sha256_of(staged)
        location.storage.publish(staged, key)
    # After the publish: a line without its archive would vouch for nothing, while an
    # archive without a line is simply never restored unless an operator vouches for it.
    _record(catalog, conninfo, sql_dir, key=key, sha256=sha256, size=size)
    existing = list_backups(location, catalog.pipeline)
    doomed = existing[:-keep] if keep > 0 else []
    for old in doomed:
        location.storage.delete(old)
    return BackupResult(key=key, size=size, sha256=sha256, schemas=tuple(schemas), deleted=tuple(doomed))


def list_backups(location: Location, pipeline: str) -> list[str]:
    """Backup keys, oldest first (the names sort by time)."""
    return [k for k in location.storage.list(backups_prefix(location, pipeline)) if k.endswith(".dump")]


def _expected_sha256(
    catalog: Catalog, key: str, backups: list[str], recorded: dict[str, str], sha256: str | None
) -> tuple[str, str]:
    """The archive to restore and the digest it must have: from the ledger, or the operator's."""
    where = f"pipeline {catalog.pipeline}"
    if sha256 is not None and not _SHA256.fullmatch(sha256):
        msg = f"{where}: --sha256 must be 64 lowercase hex digits, got {len(sha256)} characters"
        raise BackupError(msg)
    if key == "latest":
        # Only archives something vouches for: a newer unrecorded one is not "latest".
        vouched = backups if sha256 else [k for k in backups if k in recorded]
        if not vouched:
            have = f"{len(backups)} archive(s), none with a line in {catalog.ledger_schema}.backups"
            msg = f"{where}: no backup to restore ({have}); pass a KEY and --sha256 from its backup run"
            raise BackupError(msg)
        key = vouched[-1]
    elif key not in backups:
        msg = f"{where}: no backup {key} (have: {', '.join(backups) or 'none'})"
        raise BackupError(msg)
    expected = sha256 or recorded.get(key)
    if expected is None:
        msg = (
            f"{where}: backup {key} has no line in {catalog.ledger_schema}.backups of this database, "
            "so nothing vouches for it; restoring into a fresh database? pass --sha256 with the "
            "digest its backup run logged"
        )
        raise BackupError(msg)
    return key, expected


def _download_checked(location: Location, key: str, expected: str, archive: Path) -> None:
    """Copy the archive to the spool, refusing it unless its sha256 is the expected one."""
    digest = hashlib.sha256()
    with location.storage.open_read(key) as source, archive.open("wb") as sink:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            sink.write(chunk)
    if digest.hexdigest() != expected:
        msg = (
            f"backup {key}: its sha256 is {digest.hexdigest()} but {expected} was recorded when it "
            "was taken; the archive was replaced or damaged, nothing was restored"
        )
        raise BackupError(msg)


def restore(
    catalog: Catalog,
    key: str,
    location: Location,
    settings: WarehouseSettings,
    sql_dir: Path,
    *,
    sha256: str | None = None,
) -> list[str]:
    """Restore a backup (a key, or 'latest') into the database `settings.admin_url` names.

    The archive must match its ledger line in that database, or `sha256` when the
    database is fresh (the digest the backup run logged, kept by the operator).
    """
    backups = list_backups(location, catalog.pipeline)
    recorded = ledger(catalog, settings.admin_conninfo(), sql_dir, backups)
    key, expected = _expected_sha256(catalog, key, backups, recorded, sha256)
    # As the owner, never the admin: even a vouched-for archive's SQL (an index on a
    # function, a default) then runs with the owner's rights in its own schemas only.
    owner = make_conninfo(
        settings.admin_conninfo(),
        user=catalog.owner_role,
        password=settings.owner_password.get_secret_value() or None,
        application_name="dwh-restore",
    )
    target, env = _split_password(owner)
    with spool_dir() as spool:
        archive = spool / "restore.dump"
        _download_checked(location, key, expected, archive)
        migrate(catalog, settings, sql_dir)  # roles and schemas, owned by the pipeline's owner
        # The schemas exist (migrate made them, owned by the owner, who may not create
        # schemas): restore everything in them, not the schemas themselves.
        listing = spool / "restore.list"
        toc = _output([_tool("pg_restore"), "--list", str(archive)], env, f"pg_restore --list of {key}")
        kept = [line for line in toc.splitlines(keepends=True) if " SCHEMA - " not in line]
        listing.write_text("".join(kept))
        command = [_tool("pg_restore"), "--clean", "--if-exists", "--exit-on-error", "--single-transaction"]
        command += ["--no-owner", f"--use-list={listing}", "--dbname", target, str(archive)]
        _run(command, env, f"pg_restore of {key} as {catalog.owner_role}")
        size = archive.stat().st_size
    if key not in recorded:  # a fresh database now vouches for the archive it came from
        _record(catalog, owner, sql_dir, key=key, sha256=expected, size=size)
    return owned_schemas(catalog, settings.admin_conninfo(), sql_dir)
