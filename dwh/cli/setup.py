"""Setting up: `dwh dev`, `migrate`, `seed-source`, `blocks apply`, `automations apply`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dwh.cli.common import app, console, fail
from dwh.core.blocks import source_settings
from dwh.core.catalog import CatalogError, load_catalog
from dwh.core.migrate import MigrationError, migrate
from dwh.core.settings import RunSettings, SeedSettings, UrlError, WarehouseSettings

# `dwh dev` forwards to the dev-only `devstack` package, imported only when asked for: the
# worker image and the wheel do not ship it (moto, which it runs, is a dev dependency).
_FORWARD = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@app.command("dev", context_settings=_FORWARD, add_help_option=False)
def dev_command(ctx: typer.Context) -> None:
    """A throwaway local stack (PostGIS, S3 API, Prefect): `dwh dev up|down|env`."""
    try:
        from devstack.cli import dev_app  # noqa: PLC0415  (dev-only package)
    except ModuleNotFoundError as exc:
        raise fail(
            f"`dwh dev` needs the development checkout and its dev dependencies ({exc.name} is "
            "missing): run it from a clone of the repository after `uv sync` (scripts/bootstrap); "
            "the worker image does not ship the dev stack"
        ) from None
    dev_app(args=ctx.args, prog_name="dwh dev")


@app.command("migrate")
def migrate_command(pipeline: str) -> None:
    """Apply the pipeline's numbered migrations once each, then views, grants and audits."""
    run = RunSettings()
    try:
        catalog = load_catalog(pipeline, run.pipelines_dir)
        result = migrate(catalog, WarehouseSettings(), run.sql_dir)  # type: ignore[call-arg]
    except (CatalogError, UrlError, MigrationError) as exc:
        raise fail(str(exc)) from exc
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
        raise fail(str(exc)) from exc
    table = Table("table", "rows", title=f"source of {pipeline}")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)


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
    from dwh.core.block_apply import apply_blocks  # noqa: PLC0415
    from dwh.core.blocks import BlockError, require_prefect_api  # noqa: PLC0415
    from dwh.core.settings import NotificationSettings, StorageSettings  # noqa: PLC0415

    try:
        require_prefect_api("dwh blocks apply")
        applied = apply_blocks(StorageSettings(), NotificationSettings(), connections=connections)
    except (BlockError, UrlError) as exc:
        raise fail(str(exc)) from exc
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
        raise fail(str(exc)) from exc
    for automation in applied:
        console.print(f"{automation.action:<10} {automation.name}", highlight=False)
