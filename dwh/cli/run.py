"""Running pipelines by hand: `dwh run`, `datamarts`, `export-json`, `import-csv`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from dwh.cli.common import app, console, err, fail, prefect_server, renamed_option
from dwh.core.catalog import CatalogError
from dwh.core.settings import RunSettings, UrlError
from dwh.ingest.engine import Progress as EngineProgress
from dwh.ingest.report import IngestFailedError, IngestSummary
from dwh.operations.guard import RoleRightsError, guarded_engine


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
    from dwh.analytics.steps import TransformError  # noqa: PLC0415
    from dwh.ingest import progress as hub  # noqa: PLC0415
    from flows.ingest import ingest  # noqa: PLC0415  (imports Prefect: slow)

    star_schema = (RunSettings().sql_dir / pipeline / "transform").is_dir()
    if rebuild and not star_schema:
        raise fail(f"--rebuild: pipeline {pipeline!r} has no star schema (sql/{pipeline}/transform/)")
    bars = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err)
    listener = _Bars(bars)
    hub.add_listener(listener)
    tables, since = table or None, _aware(backfill_from)
    etl = None
    try:
        with prefect_server(), bars:
            if star_schema:
                from flows.etl import etl as etl_flow  # noqa: PLC0415
                from flows.etl import etl_outcome  # noqa: PLC0415

                etl = etl_outcome(
                    etl_flow(pipeline, tables, full_refresh, since, repair, rebuild, return_state=True)
                )
                summary = etl.ingest
            else:
                summary = ingest(
                    pipeline, tables=tables, full_refresh=full_refresh, backfill_from=since, repair=repair
                )
    except IngestFailedError as exc:
        _print_summary(exc.summary)
        raise fail(str(exc)) from exc
    except (CatalogError, UrlError, RoleRightsError, TransformError, RebuildMismatchError) as exc:
        raise fail(str(exc)) from exc
    finally:
        hub.remove_listener(listener)
    if summary is not None:
        _print_summary(summary)
    if etl is not None:
        console.print(f"[yellow]{etl.message}[/]" if etl.skipped else etl.message, highlight=False)


@app.command("datamarts")
def datamarts_command(
    pipeline: str,
    full_refresh: Annotated[bool, typer.Option(help="recompute every row, not only marked ones")] = False,
    full_rebuild: Annotated[bool, typer.Option(hidden=True, help="deprecated: --full-refresh")] = False,
) -> None:
    """Refresh the pipeline's datamarts (the `datamarts` flow) and print what each did."""
    full_refresh = renamed_option(
        full_refresh, "--full-refresh", old_given=full_rebuild, old="--full-rebuild"
    )
    from dwh.analytics.steps import TransformError  # noqa: PLC0415
    from flows.datamarts import datamarts, datamarts_outcome  # noqa: PLC0415  (imports Prefect: slow)

    try:
        with prefect_server():
            outcome = datamarts_outcome(datamarts(pipeline, full_refresh=full_refresh, return_state=True))
    except (CatalogError, UrlError, FileNotFoundError, RoleRightsError, TransformError) as exc:
        raise fail(str(exc)) from exc
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
    full_refresh: Annotated[bool, typer.Option(help="render every document, not only changed ones")] = False,
    full: Annotated[bool, typer.Option("--full", hidden=True, help="deprecated: --full-refresh")] = False,
) -> None:
    """Publish the pipeline's datamarts as validated JSON (the `export_json` flow) to DWH_EXPORT_URL."""
    full_refresh = renamed_option(full_refresh, "--full-refresh", old_given=full, old="--full")
    from dwh.analytics.documents import ExportError  # noqa: PLC0415
    from dwh.analytics.publish import PublishError  # noqa: PLC0415
    from flows.export_json import export_json, export_outcome  # noqa: PLC0415  (imports Prefect: slow)

    try:
        with prefect_server():
            outcome = export_outcome(export_json(pipeline, full_refresh=full_refresh, return_state=True))
    except (CatalogError, UrlError, ExportError, PublishError, RoleRightsError) as exc:
        raise fail(str(exc)) from exc
    colour = "yellow" if outcome.result is None or outcome.result.version is None else "green"
    console.print(f"[{colour}]{outcome.message}[/]", highlight=False)


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
                    raise fail(f"{pipeline}.{table} is locked by a running ingest; it loads on its next run")
                for loaded in load_pending(engine, spec):
                    console.print(
                        f"run {loaded.run_id}: loaded {loaded.rows_loaded:,}, skipped {loaded.rows_skipped:,}"
                    )
    except (CatalogError, UrlError, CsvImportError, LoadError, RoleRightsError) as exc:
        raise fail(str(exc)) from exc
