"""The `dwh` command: one entry point for operators (typer).

Every command reads its configuration from the environment (see `.env.example`);
`eval "$(dwh dev env)"` points them all at the throwaway dev stack.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from devstack import dev_app
from dwh.core.blocks import source_settings
from dwh.core.catalog import CatalogError, load_catalog, parse_catalog
from dwh.core.migrate import MigrationError, migrate
from dwh.core.settings import RunSettings, SeedSettings, UrlError, WarehouseSettings
from dwh.ingest.engine import Progress as EngineProgress
from dwh.ingest.report import IngestFailedError, IngestSummary
from dwh.operations.guard import RoleRightsError, guarded_engine

if TYPE_CHECKING:
    from dwh.operations.verify import Gate

app = typer.Typer(help="Prefect-native extract → object storage → load pipelines.", no_args_is_help=True)
app.add_typer(dev_app, name="dev", help="A throwaway local stack (PostGIS, S3 API, Prefect).")
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=1)


# Without PREFECT_API_URL, Prefect starts a temporary server for the run and gives it
# 20 s; on a busy 2-core machine that is too little, and the run failed before touching a
# table. A generous limit costs nothing when the server is quick.
EPHEMERAL_STARTUP_SECONDS = "180"
_EPHEMERAL_TIMEOUT = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


@app.callback()
def _configure() -> None:
    """Set before any command imports Prefect, which reads its settings once, at import."""
    os.environ.setdefault(_EPHEMERAL_TIMEOUT, EPHEMERAL_STARTUP_SECONDS)


@contextmanager
def _prefect_server() -> Iterator[None]:
    """Around a command that needs a Prefect API: when the temporary one cannot start, say what to run."""
    try:
        yield
    except RuntimeError as exc:
        if "ephemeral Prefect API server" not in str(exc):
            raise
        seconds = os.environ.get(_EPHEMERAL_TIMEOUT, EPHEMERAL_STARTUP_SECONDS)
        raise _fail(
            f"PREFECT_API_URL is not set and the temporary Prefect server did not start within "
            f"{seconds} s ({_EPHEMERAL_TIMEOUT}). Point PREFECT_API_URL at your Prefect server, or "
            'start one: `dwh dev up --prefect && eval "$(dwh dev env)"` (or `prefect server start`)'
        ) from None


@app.command("migrate")
def migrate_command(pipeline: str) -> None:
    """Apply the pipeline's numbered migrations once each, then views, grants and audits."""
    run = RunSettings()
    try:
        catalog = load_catalog(pipeline, run.pipelines_dir)
        result = migrate(catalog, WarehouseSettings(), run.sql_dir)  # type: ignore[call-arg]
    except (CatalogError, UrlError, MigrationError) as exc:
        raise _fail(str(exc)) from exc
    for name in result.applied:
        console.print(f"applied   {name}")
    console.print(
        f"{pipeline}: {len(result.applied)} applied, {len(result.already_applied)} already "
        f"applied, {len(result.repeatable)} repeatable steps and audits passed"
    )


@app.command("seed-source")
def seed_source_command(
    pipeline: str,
    rows: Annotated[int, typer.Option(help="position rows to add (fleet)")] = 200_000,
    notes: Annotated[int, typer.Option(help="notes to add, ~2.6 actions each (osm_notes)")] = 10_000,
) -> None:
    """Generate (or grow) a realistic sample source database for a reference pipeline."""
    from dwh.onboarding.seed import SourceSeedError, seed_source  # noqa: PLC0415

    run = RunSettings()
    try:
        counts = seed_source(
            SeedSettings().conninfo(source_settings()),
            pipeline,
            rows=rows,
            sql_dir=run.sql_dir,
            notes=notes,
        )
    except (FileNotFoundError, SourceSeedError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    table = Table("table", "rows", title=f"source of {pipeline}")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)


def _print_summary(summary: IngestSummary) -> None:
    table = Table(
        "table",
        "mode",
        "status",
        "extracted",
        "loaded",
        "skipped",
        "seconds",
        "files",
        "error",
        title=f"ingest {summary.pipeline}",
    )
    for t in summary.tables:
        style = {"loaded": "green", "skipped": "yellow", "failed": "red"}[t.status]
        table.add_row(
            t.table,
            t.mode,
            f"[{style}]{t.status}[/]",
            f"{t.rows_extracted:,}",
            f"{t.rows_loaded:,}",
            f"{t.rows_skipped:,}",
            f"{t.seconds:.1f}",
            str(len(t.files)),
            t.error or "",
        )
    console.print(table)
    for t in summary.held_back:
        console.print(f"[yellow]{t.table} held back: {t.held_back}[/]", highlight=False)


class _Bars:
    """A rich progress bar per table and phase, fed by the engine's progress reports."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[tuple[str, str], TaskID] = {}

    def __call__(self, report: EngineProgress) -> None:
        key = (report.table, report.phase)
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(f"{report.phase} {report.table}", total=None)
        self.progress.update(
            self.tasks[key],
            description=f"{report.phase} {report.table}: {report.rows:,} rows, {report.size / 2**20:,.0f} MB",
        )


def _aware(moment: datetime | None) -> datetime | None:
    """Typer parses naive datetimes; a naive backfill time means UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


@app.command("run")
def run_command(  # noqa: PLR0917  (typer: one parameter per option)
    pipeline: str,
    table: Annotated[list[str] | None, typer.Option("--table", "-t", help="only these")] = None,
    full_refresh: Annotated[bool, typer.Option(help="reseed from 2000-01-01")] = False,
    backfill_from: Annotated[
        datetime | None,
        typer.Option(
            "--backfill-from", "--from", help="re-extract from this time (watermark only moves back)"
        ),
    ] = None,
    repair: Annotated[
        bool,
        typer.Option(
            help="re-extract (from --from, else all history) and overwrite rows bronze already has",
        ),
    ] = False,
    rebuild: Annotated[
        bool,
        typer.Option(
            help="star schema: after the incremental run, rebuild facts and datamarts from bronze "
            "and fail naming the entities where the two differ",
        ),
    ] = False,
) -> None:
    """Run the ingest parent flow locally and print the per-table summary.

    A pipeline with a star schema (`sql/<pipeline>/transform/`) runs its ETL flow
    instead: the same ingest, then the transform and the datamarts (`--rebuild`: then
    a rebuild from bronze, checked against the incremental result).
    """
    from dwh.analytics.rebuild_check import RebuildMismatchError  # noqa: PLC0415
    from dwh.analytics.transform import TransformError  # noqa: PLC0415
    from dwh.ingest import progress as hub  # noqa: PLC0415
    from flows.ingest import ingest  # noqa: PLC0415  (imports Prefect: slow)

    star_schema = (RunSettings().sql_dir / pipeline / "transform").is_dir()
    if rebuild and not star_schema:
        raise _fail(f"--rebuild: pipeline {pipeline!r} has no star schema (sql/{pipeline}/transform/)")
    bars = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err)
    listener = _Bars(bars)
    hub.add_listener(listener)
    tables, since = table or None, _aware(backfill_from)
    etl = None
    try:
        with _prefect_server(), bars:
            if star_schema:
                from flows.osm_notes import etl_outcome, osm_notes_etl  # noqa: PLC0415

                etl = etl_outcome(
                    osm_notes_etl(pipeline, tables, full_refresh, since, repair, rebuild, return_state=True)
                )
                summary = etl.ingest
            else:
                summary = ingest(
                    pipeline, tables=tables, full_refresh=full_refresh, backfill_from=since, repair=repair
                )
    except IngestFailedError as exc:
        _print_summary(exc.summary)
        raise _fail(str(exc)) from exc
    except (CatalogError, UrlError, RoleRightsError, TransformError, RebuildMismatchError) as exc:
        raise _fail(str(exc)) from exc
    finally:
        hub.remove_listener(listener)
    if summary is not None:
        _print_summary(summary)
    if etl is not None:
        console.print(f"[yellow]{etl.message}[/]" if etl.skipped else etl.message, highlight=False)


@app.command("datamarts")
def datamarts_command(
    pipeline: str,
    full_rebuild: Annotated[bool, typer.Option(help="recompute every row, not only marked ones")] = False,
) -> None:
    """Refresh the pipeline's datamarts (the `datamarts` flow) and print what each did."""
    from dwh.analytics.transform import TransformError  # noqa: PLC0415
    from flows.datamarts import datamarts, datamarts_outcome  # noqa: PLC0415  (imports Prefect: slow)

    try:
        with _prefect_server():
            outcome = datamarts_outcome(datamarts(pipeline, full_rebuild=full_rebuild, return_state=True))
    except (CatalogError, UrlError, FileNotFoundError, RoleRightsError, TransformError) as exc:
        raise _fail(str(exc)) from exc
    if outcome.skipped:
        console.print(f"[yellow]{outcome.message}[/]", highlight=False)
        return
    table = Table("datamart", "mode", "refreshed", "rows", "seconds", title=f"datamarts {pipeline}")
    for result in outcome.results:
        mode = "full rebuild" if result.full_rebuild else "marked"
        table.add_row(
            result.datamart,
            mode,
            f"{result.rows_refreshed:,}",
            f"{result.rows_total:,}",
            f"{result.seconds:.1f}",
        )
    console.print(table)


@app.command("export-json")
def export_json_command(
    pipeline: str,
    full: Annotated[
        bool, typer.Option("--full", help="render every document, not only changed ones")
    ] = False,
) -> None:
    """Publish the pipeline's datamarts as validated JSON (the `export_json` flow) to DWH_EXPORT_URL."""
    from dwh.analytics.export import ExportError  # noqa: PLC0415
    from dwh.analytics.publish import PublishError  # noqa: PLC0415
    from flows.export_json import export_json, export_outcome  # noqa: PLC0415  (imports Prefect: slow)

    try:
        with _prefect_server():
            outcome = export_outcome(export_json(pipeline, full=full, return_state=True))
    except (CatalogError, UrlError, ExportError, PublishError, RoleRightsError) as exc:
        raise _fail(str(exc)) from exc
    colour = "yellow" if outcome.result is None or outcome.result.version is None else "green"
    console.print(f"[{colour}]{outcome.message}[/]", highlight=False)


@app.command("verify")
def verify_command(pipeline: str) -> None:
    """The seed's verification gates (§9): print a table, exit 0 when every gate passes."""
    from dwh.operations.verify import verify  # noqa: PLC0415

    try:
        gates = verify(guarded_engine(pipeline))
    except (CatalogError, UrlError, RoleRightsError) as exc:
        raise _fail(str(exc)) from exc
    failed = [g for g in gates if not g.ok]
    columns = ["gate", "table", "result", "detail"] + (["fix"] if failed else [])
    table = Table(*columns, title=f"verify {pipeline}")
    for gate in gates:
        result = "[green]pass[/]" if gate.ok else "[red]FAIL[/]"
        fix = [gate.fix] if failed and not gate.ok else []
        table.add_row(gate.gate, gate.table, result, gate.detail, *fix)
    console.print(table)
    if failed:
        raise _fail(f"{len(failed)} of {len(gates)} gates failed")
    console.print(f"{pipeline}: all {len(gates)} gates passed")


@app.command("health")
def health_command(pipeline: str) -> None:
    """Cheap hourly checks: reachability, storage, backlog, freshness, flows, disk. Exit 0/1."""
    from dwh.operations.health import check_health  # noqa: PLC0415

    try:
        with _prefect_server():
            checks = check_health(guarded_engine(pipeline, tolerate_unreachable=True))
    except (CatalogError, UrlError, RoleRightsError) as exc:
        raise _fail(str(exc)) from exc
    table = Table("check", "result", "detail", title=f"health {pipeline}")
    for check in checks:
        result = "[green]ok[/]" if check.ok else "[yellow]WARN[/]" if check.warning else "[red]FAIL[/]"
        table.add_row(check.check, result, check.detail)
    console.print(table)
    failed = [c for c in checks if c.failed]
    if failed:
        raise _fail(f"{len(failed)} of {len(checks)} health checks failed")


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
        raise _fail(str(exc)) from exc
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
        raise _fail(str(exc)) from exc
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
        raise _fail(str(exc)) from exc
    console.print(
        f"restored {', '.join(schemas)}; the next `dwh run {pipeline}` continues from its watermarks"
    )


@app.command("import-csv")
def import_csv_command(
    pipeline: str,
    table: str,
    path: Path,
    load: Annotated[bool, typer.Option(help="load it now instead of on the next run")] = False,
) -> None:
    """Adopt an external CSV (header = bronze columns) as a run: split into parts, then load."""
    from dwh.ingest.csv_import import CsvImportError, import_csv  # noqa: PLC0415
    from dwh.ingest.load import LoadError, load_pending  # noqa: PLC0415
    from dwh.ingest.locks import table_lock  # noqa: PLC0415

    try:
        engine = guarded_engine(pipeline)
        spec = engine.catalog.table(table)
        result = import_csv(engine, spec, path)
        console.print(
            f"run {result.run_id}: {result.rows:,} rows in {result.parts} part(s) at {result.csv_path}"
        )
        if load:
            with table_lock(engine, table) as acquired:
                if not acquired:
                    raise _fail(f"{pipeline}.{table} is locked by a running ingest; it loads on its next run")
                for loaded in load_pending(engine, spec):
                    console.print(
                        f"run {loaded.run_id}: loaded {loaded.rows_loaded:,}, skipped {loaded.rows_skipped:,}"
                    )
    except (CatalogError, UrlError, CsvImportError, LoadError, RoleRightsError) as exc:
        raise _fail(str(exc)) from exc


blocks_app = typer.Typer(help="Prefect blocks the product needs, made from settings.", no_args_is_help=True)
automations_app = typer.Typer(help="Automations as code: deployments/automations.yaml.", no_args_is_help=True)
app.add_typer(blocks_app, name="blocks")
app.add_typer(automations_app, name="automations")


@blocks_app.command("apply")
def blocks_apply_command(
    connections: Annotated[
        bool, typer.Option(help="also create missing connection blocks from DWH_SOURCE_*/WAREHOUSE_*/AWS_*")
    ] = False,
) -> None:
    """Save the result-storage and notification blocks from settings (idempotent)."""
    from dwh.core.blocks import BlockError, apply_blocks, require_prefect_api  # noqa: PLC0415
    from dwh.core.settings import NotificationSettings, StorageSettings  # noqa: PLC0415

    try:
        require_prefect_api("dwh blocks apply")
        applied = apply_blocks(StorageSettings(), NotificationSettings(), connections=connections)
    except (BlockError, UrlError) as exc:
        raise _fail(str(exc)) from exc
    for block in applied:
        console.print(f"{block.action:<10} {block.slug}", highlight=False)


@automations_app.command("apply")
def automations_apply_command() -> None:
    """Create or update every automation by name, for every catalog table (idempotent)."""
    from dwh.core.automations import (  # noqa: PLC0415
        AutomationError,
        apply_automations,
        build_automations,
        load_catalogs,
    )
    from dwh.core.blocks import BlockError, notification_block_id, require_prefect_api  # noqa: PLC0415
    from dwh.core.settings import NotificationSettings  # noqa: PLC0415

    notify = NotificationSettings()
    try:
        require_prefect_api("dwh automations apply")
        automations = build_automations(
            load_catalogs(RunSettings().pipelines_dir),
            block_id=notification_block_id(notify),
            factor=notify.freshness_factor,
        )
        applied = apply_automations(automations)
    except (AutomationError, BlockError, CatalogError) as exc:
        raise _fail(str(exc)) from exc
    for automation in applied:
        console.print(f"{automation.action:<10} {automation.name}", highlight=False)


# --- a new pipeline: init, migrations generate, drift, preflight (issue 11) ------------------

migrations_app = typer.Typer(help="Bronze migrations generated from the catalog.", no_args_is_help=True)
app.add_typer(migrations_app, name="migrations")


def _gate_table(title: str, gates: list[Gate]) -> Table:
    """Pass/fail rows in the shape `dwh verify` prints, with the fix of each failure."""
    failed = any(not g.ok for g in gates)
    table = Table("gate", "table", "result", "detail", *(["fix"] if failed else []), title=title)
    for gate in gates:
        result = "[green]pass[/]" if gate.ok else "[red]FAIL[/]"
        table.add_row(
            gate.gate, gate.table, result, gate.detail, *([gate.fix if not gate.ok else ""] if failed else [])
        )
    return table


@app.command("init")
def init_command(
    pipeline: str,
    from_source: Annotated[
        bool, typer.Option("--from-source", help="introspect the source database")
    ] = False,
    schema: Annotated[
        list[str] | None, typer.Option("--schema", help="source schema(s); default public")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="catalog file; default <pipelines dir>/<pipeline>.yaml")
    ] = None,
    write: Annotated[bool, typer.Option("--write", "--force", help="replace an existing catalog")] = False,
) -> None:
    """Propose a catalog from the live source, with the reason for every decision as a comment.

    An existing catalog is never changed unless --write is given: the diff is printed instead.
    What the source cannot tell (columns: expressions, cadences, health expectations,
    export documents) is kept from it; mode, key, watermark and geometry are proposed.
    """
    import psycopg  # noqa: PLC0415

    from dwh.onboarding.proposal import catalog_diff, check_proposal, propose_from_source  # noqa: PLC0415

    if not from_source:
        raise _fail("only --from-source is supported: dwh init <pipeline> --from-source")
    run = RunSettings()
    schemas = schema or ["public"]
    path = out or run.pipelines_dir / f"{pipeline}.yaml"
    kept = None
    if path.exists():
        try:
            kept = parse_catalog(path.read_text(encoding="utf-8"), path)
        except (CatalogError, UrlError) as exc:
            err.print(f"[yellow]{exc}\nnothing is kept from it[/]", highlight=False)
    try:
        with psycopg.connect(source_settings().conninfo(), autocommit=True) as conn:
            text = propose_from_source(conn, run.sql_dir, pipeline, schemas, kept)
        check_proposal(text, path)
    except (psycopg.Error, CatalogError, ValueError) as exc:
        raise _fail(f"dwh init {pipeline}: {exc}") from exc
    if path.exists() and not write:
        diff = catalog_diff(path.read_text(encoding="utf-8"), text, path)
        console.print(
            diff or f"{path}: the proposal matches the catalog", highlight=False, markup=False, soft_wrap=True
        )
        console.print(
            f"{path} exists and was not changed; --write replaces it", highlight=False, soft_wrap=True
        )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    console.print(
        f"wrote {path}; review the comments, then `dwh migrations generate {pipeline}`", highlight=False
    )


@migrations_app.command("generate")
def migrations_generate_command(pipeline: str) -> None:
    """Write the next numbered bronze migration from the catalog and the source's column types."""
    import psycopg  # noqa: PLC0415

    from dwh.onboarding.bronze_ddl import GenerateError, generate_bronze_migration  # noqa: PLC0415

    run = RunSettings()
    try:
        catalog = load_catalog(pipeline, run.pipelines_dir)
        with (
            psycopg.connect(source_settings().conninfo(), autocommit=True) as source,
            psycopg.connect(WarehouseSettings().admin_conninfo(), autocommit=True) as warehouse,  # type: ignore[call-arg]
        ):
            result = generate_bronze_migration(catalog, source, warehouse, run.sql_dir)
    except (CatalogError, UrlError, GenerateError, MigrationError, psycopg.Error) as exc:
        raise _fail(str(exc)) from exc
    if result is None:
        console.print(f"{pipeline}: bronze already has every catalog table and source column")
        return
    console.print(
        f"wrote {result.path}: creates {', '.join(result.created) or 'no table'}, "
        f"adds {', '.join(result.added) or 'no column'}; apply it with `dwh migrate {pipeline}`",
        highlight=False,
    )


@app.command("drift")
def drift_command(pipeline: str) -> None:
    """Compare source, catalog and bronze; exit 1 when a difference would lose or corrupt data."""
    import psycopg  # noqa: PLC0415

    from dwh.ingest.drift import pipeline_drift  # noqa: PLC0415
    from dwh.ingest.engine import Engine  # noqa: PLC0415

    try:
        engine = Engine.from_settings(pipeline)
        with (
            psycopg.connect(engine.source_conninfo, autocommit=True) as source,
            psycopg.connect(engine.warehouse_conninfo, autocommit=True) as warehouse,
        ):
            findings = pipeline_drift(engine.catalog, source, warehouse, engine.sql_dir)
    except (CatalogError, UrlError, psycopg.Error) as exc:
        raise _fail(str(exc)) from exc
    table = Table("table", "column", "change", "severity", "detail", "fix", title=f"drift {pipeline}")
    style = {"error": "red", "warn": "yellow", "info": "dim"}
    for f in findings:
        table.add_row(f.table, f.column, f.change, f"[{style[f.severity]}]{f.severity}[/]", f.detail, f.fix)
    if findings:
        console.print(table)
    lossy = [f for f in findings if f.loses_data]
    if lossy:
        raise _fail(
            f"{len(lossy)} difference(s) would lose or corrupt data; the extract refuses those tables"
        )
    console.print(f"{pipeline}: no difference that loses data ({len(findings)} finding(s) listed)")


@app.command("preflight")
def preflight_command(pipeline: str) -> None:
    """The seed's pre-flight and pre-deploy gates (§3, §9): a pass/fail table, exit 0 when all pass."""
    from dwh.ingest.engine import Engine  # noqa: PLC0415
    from dwh.operations.preflight import preflight  # noqa: PLC0415

    try:
        gates = preflight(Engine.from_settings(pipeline))
    except (CatalogError, UrlError) as exc:
        raise _fail(str(exc)) from exc
    console.print(_gate_table(f"preflight {pipeline}", gates))
    failed = [g for g in gates if not g.ok]
    if failed:
        names = ", ".join(sorted({g.gate for g in failed}))
        raise _fail(f"{len(failed)} of {len(gates)} gates failed: {names}")
    console.print(f"{pipeline}: all {len(gates)} pre-deploy gates passed")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
