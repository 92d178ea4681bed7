"""Operations (README "Operations"): `dwh verify`, `health`, `backup`, `backups`, `restore`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dwh.cli.common import app, attempt, console, fail, gate_table, prefect_server, verdict
from dwh.core.catalog import CatalogError
from dwh.core.migrate import MigrationError
from dwh.core.settings import UrlError, WarehouseSettings
from dwh.operations.guard import RoleRightsError, guarded_engine


@app.command("verify")
def verify_command(pipeline: str) -> None:
    """The seed's verification gates (§9): print a table, exit 0 when every gate passes."""
    from dwh.operations.verify import verify  # noqa: PLC0415

    gates = attempt(lambda: verify(guarded_engine(pipeline)), CatalogError, UrlError, RoleRightsError)
    failed = [g for g in gates if not g.ok]
    verdict(
        gate_table(f"verify {pipeline}", gates),
        failed,
        len(gates),
        "gates",
        passed=f"{pipeline}: all {len(gates)} gates passed",
    )


@app.command("health")
def health_command(pipeline: str) -> None:
    """Cheap hourly checks: reachability, storage, backlog, freshness, flows, disk. Exit 0/1."""
    from dwh.operations.health import Check, check_health  # noqa: PLC0415

    def checks() -> list[Check]:
        with prefect_server():
            return check_health(guarded_engine(pipeline, tolerate_unreachable=True))

    results = attempt(checks, CatalogError, UrlError, RoleRightsError)
    table = Table("check", "result", "detail", title=f"health {pipeline}")
    for check in results:
        result = "[green]ok[/]" if check.ok else "[yellow]WARN[/]" if check.warning else "[red]FAIL[/]"
        table.add_row(check.check, result, check.detail)
    verdict(table, [c for c in results if c.failed], len(results), "health checks", passed=None)


@app.command("backup")
def backup_command(
    pipeline: str, keep: Annotated[int, typer.Option(help="backups to keep; older ones are deleted")] = 7
) -> None:
    """pg_dump the pipeline's warehouse schemas to DWH_BACKUP_URL and record its sha256."""
    from dwh.operations.backup import BackupError, backup, backup_location  # noqa: PLC0415

    try:
        engine = guarded_engine(pipeline)
        location = backup_location()
        result = backup(engine.catalog, engine.warehouse_conninfo, location, engine.sql_dir, keep=keep)
    except (CatalogError, UrlError, BackupError, RoleRightsError) as exc:
        raise fail(str(exc)) from exc
    where = location.storage.url(result.key)
    console.print(f"{where}: {result.size / 2**20:,.1f} MB of {', '.join(result.schemas)}")
    console.print(f"sha256 {result.sha256} (keep it: `dwh restore --sha256` into a fresh database)")
    for key in result.deleted:
        console.print(f"deleted {key} (retention {keep})")


@app.command("backups")
def backups_command(pipeline: str) -> None:
    """List the pipeline's archives, oldest first, with the sha256 its ledger recorded."""
    from dwh.ingest.engine import Engine  # noqa: PLC0415
    from dwh.operations.backup import BackupError, backup_location, ledger, list_backups  # noqa: PLC0415

    try:
        engine = Engine.from_settings(pipeline)
        location = backup_location()
        keys = list_backups(location, pipeline)
        recorded = ledger(engine.catalog, engine.warehouse_conninfo, engine.sql_dir, keys)
    except (CatalogError, UrlError, BackupError) as exc:
        raise fail(str(exc)) from exc
    where = location.storage.url(location.key(pipeline))
    table = Table("backup", "recorded sha256", title=f"{pipeline}: {where}")
    for key in keys:
        table.add_row(key, recorded.get(key, "[yellow]no ledger line: restore needs --sha256[/]"))
    console.print(table)


@app.command("restore")
def restore_command(
    pipeline: str,
    backup_key: Annotated[str, typer.Argument(help="a key from `dwh backups`, or 'latest'")] = "latest",
    sha256: Annotated[
        str | None,
        typer.Option(help="the digest the backup run logged; needed when the database has no ledger line"),
    ] = None,
) -> None:
    """Restore a backup into the (fresh) database DWH_WAREHOUSE_ADMIN_URL names, if its sha256 matches."""
    from dwh.ingest.engine import Engine  # noqa: PLC0415
    from dwh.operations.backup import BackupError, backup_location, restore  # noqa: PLC0415

    try:
        engine = Engine.from_settings(pipeline)
        settings = WarehouseSettings()  # type: ignore[call-arg]
        schemas = restore(
            engine.catalog, backup_key, backup_location(), settings, engine.sql_dir, sha256=sha256
        )
    except (CatalogError, UrlError, BackupError, MigrationError) as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"restored {', '.join(schemas)}; the next `dwh run {pipeline}` continues from its watermarks"
    )
