"""A new pipeline: `dwh init`, `migrations generate`, `drift`, `preflight`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dwh.cli.common import app, attempt, console, err, fail, gate_table, verdict
from dwh.core.blocks import source_settings
from dwh.core.catalog import CatalogError, load_catalog, parse_catalog
from dwh.core.migrate import MigrationError
from dwh.core.settings import RunSettings, UrlError, WarehouseSettings

migrations_app = typer.Typer(help="Bronze migrations generated from the catalog.", no_args_is_help=True)


app.add_typer(migrations_app, name="migrations")


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
        raise fail("only --from-source is supported: dwh init <pipeline> --from-source")
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
        raise fail(f"dwh init {pipeline}: {exc}") from exc
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
        raise fail(str(exc)) from exc
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
        raise fail(str(exc)) from exc
    table = Table("table", "column", "change", "severity", "detail", "fix", title=f"drift {pipeline}")
    style = {"error": "red", "warn": "yellow", "info": "dim"}
    for f in findings:
        table.add_row(f.table, f.column, f.change, f"[{style[f.severity]}]{f.severity}[/]", f.detail, f.fix)
    if findings:
        console.print(table)
    lossy = [f for f in findings if f.loses_data]
    if lossy:
        raise fail(f"{len(lossy)} difference(s) would lose or corrupt data; the extract refuses those tables")
    console.print(f"{pipeline}: no difference that loses data ({len(findings)} finding(s) listed)")


@app.command("preflight")
def preflight_command(pipeline: str) -> None:
    """The seed's pre-flight and pre-deploy gates (§3, §9): a pass/fail table, exit 0 when all pass."""
    from dwh.ingest.engine import Engine  # noqa: PLC0415
    from dwh.operations.preflight import preflight  # noqa: PLC0415

    gates = attempt(lambda: preflight(Engine.from_settings(pipeline)), CatalogError, UrlError)
    failed = [g for g in gates if not g.ok]
    names = ", ".join(sorted({g.gate for g in failed}))
    passed = f"{pipeline}: all {len(gates)} pre-deploy gates passed"
    verdict(
        gate_table(f"preflight {pipeline}", gates), failed, len(gates), "gates", passed=passed, named=names
    )
