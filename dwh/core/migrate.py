"""Numbered migrations applied once each, plus repeatable steps and audits.

Like dbmate/yoyo: `NNNN_name.sql` files from `sql/common/migrations/` (shared by every
pipeline) and `sql/<pipeline>/migrations/` are applied in version order, each in its
own transaction, and recorded with a checksum; editing an applied file is refused.
Repeatable files (`R*.sql`: views, grants, watermark seeds, audits) run after every
migrate. Everything except the bootstrap runs as the pipeline's owner role, so the
objects belong to it and a migration cannot do more than the flows could.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from dwh.core.catalog import Catalog
from dwh.core.names import lock_key
from dwh.core.settings import WarehouseSettings
from dwh.core.sqlfiles import pipeline_parts, read_sql, render

_VERSIONED = re.compile(r"^(?P<version>\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    """A migration or audit failed, or an applied migration was edited."""


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class MigrateResult:
    applied: list[str]
    already_applied: list[str]
    repeatable: list[str]


def migration_dirs(catalog: Catalog, sql_dir: Path) -> list[Path]:
    return [sql_dir / "common" / "migrations", sql_dir / catalog.pipeline / "migrations"]


def repeatable_files(catalog: Catalog, sql_dir: Path) -> list[Path]:
    """Shared repeatables then the pipeline's own, each set in name order."""
    files: list[Path] = []
    for folder in (sql_dir / "common" / "repeatable", sql_dir / catalog.pipeline / "repeatable"):
        files.extend(sorted(folder.glob("R*.sql")))
    return files


def discover(catalog: Catalog, sql_dir: Path) -> list[Migration]:
    """Every versioned migration of the pipeline, in order; a clash of versions is an error."""
    found: dict[str, Migration] = {}
    for folder in migration_dirs(catalog, sql_dir):
        for path in sorted(folder.glob("*.sql")):
            match = _VERSIONED.match(path.name)
            if match is None:
                msg = f"{path}: migration files must be named NNNN_lowercase_name.sql"
                raise MigrationError(msg)
            version = match["version"]
            if version in found:
                msg = f"{path}: version {version} is also used by {found[version].path}"
                raise MigrationError(msg)
            found[version] = Migration(version, path)
    return [found[v] for v in sorted(found)]


def template_parts(catalog: Catalog, database: str) -> dict[str, sql.Composable]:
    """Placeholders for every template: names plus the catalog facts the audits check."""
    expected_keys = [{"tbl": t.name, "cols": list(t.key)} for t in catalog.tables if t.mode.incremental]
    return {
        **pipeline_parts(catalog),
        # The pipeline's own analytical schema (star schema, datamarts), when it has one.
        "dwh": sql.Identifier(catalog.dwh_schema),
        "database": sql.Identifier(database),
        "tables": sql.Literal([t.name for t in catalog.tables]),
        "roles": sql.Literal([catalog.owner_role, catalog.ro_role]),
        "expected_keys": sql.Literal(Jsonb(expected_keys)),
    }


def _fail(path: Path, exc: psycopg.Error) -> MigrationError:
    diag = exc.diag
    where = f" (at character {diag.statement_position})" if diag.statement_position else ""
    return MigrationError(f"{path}{where}: {diag.message_primary or exc}")


def _set_password(conn: psycopg.Connection[tuple[object, ...]], role: str, password: str) -> None:
    """Set a role's password as a SCRAM verifier computed client-side.

    The plaintext never travels to the server, so it cannot end up in its statement
    log or in pg_stat_activity.
    """
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    conn.execute(
        sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier.decode()))
    )


def _bootstrap(
    conn: psycopg.Connection[tuple[object, ...]],
    catalog: Catalog,
    settings: WarehouseSettings,
    sql_dir: Path,
    parts: dict[str, sql.Composable],
) -> None:
    paths = [sql_dir / "common" / "bootstrap.sql"]
    # A pipeline may add its own admin-only step (e.g. a schema the owner cannot create).
    own = sql_dir / catalog.pipeline / "bootstrap.sql"
    if own.is_file():
        paths.append(own)
    with conn.transaction():
        for path in paths:
            try:
                conn.execute(render(path, **parts))
            except psycopg.Error as exc:
                raise _fail(path, exc) from exc
        for role, secret in (
            (catalog.owner_role, settings.owner_password),
            (catalog.ro_role, settings.ro_password),
        ):
            if secret.get_secret_value():
                _set_password(conn, role, secret.get_secret_value())


def _applied(
    conn: psycopg.Connection[tuple[object, ...]], catalog: Catalog
) -> dict[str, tuple[str, str, object]]:
    rows = conn.execute(
        sql.SQL("SELECT version, filename, checksum, applied_at FROM {}.schema_migrations").format(
            sql.Identifier(catalog.control_schema)
        )
    ).fetchall()
    return {str(v): (str(f), str(c), a) for v, f, c, a in rows}


def _check_unchanged(migrations: list[Migration], applied: dict[str, tuple[str, str, object]]) -> None:
    by_version = {m.version: m for m in migrations}
    for version, (filename, checksum, applied_at) in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            msg = (
                f"migration {version} ({filename}) was applied on {applied_at} "
                "but its file is gone: restore it, applied migrations are permanent"
            )
            raise MigrationError(msg)
        if migration.checksum != checksum:
            msg = (
                f"{migration.path}: was applied on {applied_at} with checksum "
                f"{checksum[:12]}, the file now has {migration.checksum[:12]}. Applied "
                "migrations are immutable: revert the edit and add a new numbered file."
            )
            raise MigrationError(msg)


def _apply(
    conn: psycopg.Connection[tuple[object, ...]],
    catalog: Catalog,
    migration: Migration,
    parts: dict[str, sql.Composable],
) -> None:
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(catalog.owner_role)))
        try:
            conn.execute(render(migration.path, **parts))
        except psycopg.Error as exc:
            raise _fail(migration.path, exc) from exc
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.schema_migrations (version, filename, checksum) VALUES (%s, %s, %s)"
            ).format(sql.Identifier(catalog.control_schema)),
            (migration.version, migration.path.name, migration.checksum),
        )


def run_repeatables(
    conn: psycopg.Connection[tuple[object, ...]],
    catalog: Catalog,
    files: list[Path],
    parts: dict[str, sql.Composable],
) -> None:
    """Run repeatable files (views, grants, seeds, audits) in one transaction as owner."""
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(catalog.owner_role)))
        for path in files:
            try:
                conn.execute(render(path, **parts))
            except psycopg.Error as exc:
                raise _fail(path, exc) from exc


def run_audits(catalog: Catalog, conninfo: str, sql_dir: Path) -> None:
    """Only the audit repeatables (`R9*`): the checks preflight and tests call directly."""
    with psycopg.connect(conninfo) as conn:
        database = str(conninfo_to_dict(conninfo).get("dbname") or conn.info.dbname)
        audits = [p for p in repeatable_files(catalog, sql_dir) if p.name.startswith("R9")]
        run_repeatables(conn, catalog, audits, template_parts(catalog, database))


def migrate(catalog: Catalog, settings: WarehouseSettings, sql_dir: Path) -> MigrateResult:
    """Bring the warehouse up to date for one pipeline; safe to run any number of times."""
    migrations = discover(catalog, sql_dir)
    for migration in migrations:  # fail on a broken template before touching anything
        read_sql(migration.path)
    with psycopg.connect(settings.admin_conninfo()) as conn:
        parts = template_parts(catalog, conn.info.dbname)
        # One migrate per pipeline at a time; a second waits instead of racing.
        conn.execute(
            "SELECT pg_advisory_lock(hashtext(%s))", (lock_key(catalog.pipeline, "migrate", "migrations"),)
        )
        conn.commit()
        _bootstrap(conn, catalog, settings, sql_dir, parts)
        applied = _applied(conn, catalog)
        _check_unchanged(migrations, applied)
        done: list[str] = []
        for migration in migrations:
            if migration.version not in applied:
                _apply(conn, catalog, migration, parts)
                done.append(migration.path.name)
        repeatables = repeatable_files(catalog, sql_dir)
        run_repeatables(conn, catalog, repeatables, parts)
    return MigrateResult(
        applied=done,
        already_applied=[applied[v][0] for v in sorted(applied)],
        repeatable=[p.name for p in repeatables],
    )
