"""`dwh init --from-source` and `dwh migrations generate` against a real PostGIS source."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from dwh.cli import app
from dwh.core.catalog import Mode, load_catalog, parse_catalog
from dwh.core.migrate import migrate, run_audits
from dwh.core.settings import WarehouseSettings
from dwh.onboarding.bronze_ddl import generate_bronze_migration
from dwh.onboarding.proposal import propose_from_source
from flows.ingest import ingest
from tests.conftest import PIPELINES_DIR, SQL_DIR, Env, app_conninfo, seed_fleet

runner = CliRunner()


def _entry(text: str, table: str) -> str:
    """One table's lines of a proposal: from its `  <table>:` line to the next entry."""
    return text.split(f"\n  {table}:\n", 1)[1].split("\n  # ", 1)[0]


@pytest.mark.usefixtures("env")
def test_init_on_fleet_source_proposes_the_shipped_modes_keys_watermarks_and_geometry(tmp_path: Path) -> None:
    seed_fleet()
    out = tmp_path / "fleet.yaml"

    result = runner.invoke(app, ["init", "fleet", "--from-source", "--out", str(out)])

    assert result.exit_code == 0, result.output
    proposed, shipped = load_catalog("fleet", tmp_path), load_catalog("fleet", PIPELINES_DIR)
    assert [t.name for t in proposed.tables] == sorted(t.name for t in shipped.tables)
    for table in shipped.tables:
        mine = proposed.table(table.name)
        assert (mine.mode, mine.key, mine.watermark, mine.geometry) == (
            table.mode,
            table.key,
            table.watermark,
            table.geometry,
        ), table.name
    # The one difference, the unit conversion, is explained where it applies.
    text = out.read_text()
    assert shipped.table("trips").columns
    assert not proposed.table("trips").columns
    assert "declare by hand" in _entry(text, "trips")
    assert "distance_m" in _entry(text, "trips")
    # Every decision says why.
    history = _entry(text, "position_history")
    assert "watermark: recorded_at  # DEFAULT now(): DB-insertion time" in history
    assert "not gps_time: named like a device/event clock" in history
    assert "UNIQUE position_history_device_id_gps_time_key, not the generated PRIMARY KEY (id)" in history
    assert "geom Point SRID 4326" in history
    assert "rows change (updated_at is stamped on change)" in _entry(text, "devices")
    assert "Polygon SRID 4326" in _entry(text, "geofences")


@pytest.mark.usefixtures("env")
def test_init_on_an_existing_catalog_prints_the_diff_and_changes_nothing_unless_asked(tmp_path: Path) -> None:
    seed_fleet()
    out = tmp_path / "fleet.yaml"
    shipped = load_catalog("fleet", PIPELINES_DIR)
    edited = (PIPELINES_DIR / "fleet.yaml").read_text().replace("mode: append", "mode: snapshot", 1)
    out.write_text(edited)  # a decision the proposal will not share: position_history as a snapshot
    before = out.read_text()

    result = runner.invoke(app, ["init", "fleet", "--from-source", "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert out.read_text() == before
    assert f"+++ {out} (proposed)" in result.output
    assert "-    mode: snapshot" in result.output
    assert "+    mode: append  # event rows (event time gps_time) only inserted" in result.output
    assert "was not changed; --write replaces it" in result.output

    written = runner.invoke(app, ["init", "fleet", "--from-source", "--out", str(out), "--write"])
    assert written.exit_code == 0, written.output
    rewritten = load_catalog("fleet", tmp_path)
    assert rewritten.table("position_history").mode is Mode.APPEND  # the proposal decides modes
    # What the source cannot tell is kept: the unit conversion, cadences, health expectations.
    assert rewritten.table("trips").columns == {"distance_km": "distance_m / 1000.0"}
    assert (rewritten.cadence_minutes, rewritten.flow_cadences, rewritten.non_empty) == (
        shipped.cadence_minutes,
        shipped.flow_cadences,
        shipped.non_empty,
    )
    assert rewritten.description == shipped.description
    again = runner.invoke(app, ["init", "fleet", "--from-source", "--out", str(out)])
    assert "the proposal matches the catalog" in again.output  # a re-run after --write changes nothing


def test_device_time_only_table_is_a_snapshot_and_a_keyless_table_is_never_incremental(env: Env) -> None:
    env.query(
        "source",
        "CREATE TABLE public.gps_fixes (device_id bigint, gps_time timestamptz NOT NULL, speed real,"
        " PRIMARY KEY (device_id, gps_time));"
        " INSERT INTO public.gps_fixes SELECT mod(i, 50), now() - make_interval(secs => i), mod(i, 90)"
        " FROM generate_series(1, 20000) AS i;"
        " CREATE TABLE public.raw_events (payload text, recorded_at timestamptz NOT NULL DEFAULT now());"
        " INSERT INTO public.raw_events (payload) SELECT 'e' || i FROM generate_series(1, 20000) AS i;"
        " ANALYZE public.gps_fixes; ANALYZE public.raw_events;",
    )
    with psycopg.connect(app_conninfo(), autocommit=True) as conn:  # type: ignore[call-arg]
        text = propose_from_source(conn, SQL_DIR, "probe", ["public"])
    catalog = parse_catalog(text, Path("probe.yaml"))

    fixes, events = catalog.table("gps_fixes"), catalog.table("raw_events")
    assert (fixes.mode, fixes.watermark, fixes.key) == (Mode.SNAPSHOT, None, ("device_id", "gps_time"))
    assert "no DB-insertion time column (only device/event time: gps_time)" in _entry(text, "gps_fixes")
    assert "~20,000 rows (>= 10,000)" in _entry(text, "gps_fixes")
    assert "not gps_time: named like a device/event clock" in _entry(text, "gps_fixes")
    assert (events.mode, events.key) == (Mode.SNAPSHOT, ())
    assert "key: none: no PRIMARY KEY or UNIQUE constraint: never incremental" in _entry(text, "raw_events")
    assert "no natural key, so never incremental" in _entry(text, "raw_events")


def _sql_without_fleet_bronze(tmp_path: Path) -> Path:
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    for migration in (sql_dir / "fleet" / "migrations").glob("*.sql"):  # a pipeline with no bronze yet
        migration.unlink()
    return sql_dir


@pytest.mark.usefixtures("prefect_harness")
def test_generated_bronze_ddl_migrates_passes_the_audit_and_loads(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = seed_fleet()
    sql_dir = _sql_without_fleet_bronze(tmp_path)
    monkeypatch.setenv("DWH_SQL_DIR", str(sql_dir))
    catalog = env.catalog()

    result = runner.invoke(app, ["migrations", "generate", "fleet"])

    assert result.exit_code == 0, result.output
    generated = sql_dir / "fleet" / "migrations" / "0100_bronze.sql"
    assert 'CREATE TABLE {bronze}."trips" (' in generated.read_text()
    # trips opts in to delete reconciliation: its bronze table gets the engine's mark column
    trips = generated.read_text().split('CREATE TABLE {bronze}."trips" (')[1].split(");")[0]
    assert "_dwh_deleted_at timestamptz" in trips
    applied = migrate(catalog, WarehouseSettings(), sql_dir)  # type: ignore[call-arg]
    assert applied.applied == [
        "0001_control.sql",
        "0002_export.sql",
        "0003_rewind_fence.sql",
        "0004_holdback.sql",
        "0005_repair.sql",
        "0006_due_at.sql",
        "0007_reconcile.sql",
        "0100_bronze.sql",
    ]
    run_audits(catalog, env.warehouse_admin, sql_dir)
    summary = ingest("fleet")
    assert {t.table: t.rows_loaded for t in summary.tables} == {
        t.name: counts[t.name] for t in catalog.tables
    }
    # Types, keys and SRIDs as the source has them; the declared conversion in place of metres.
    geometry = env.query(
        "wh",
        "SELECT f_table_name, f_geometry_column, type, srid FROM geometry_columns WHERE f_table_schema = 'fleet_bronze'",
    )
    source_geometry = env.query(
        "source",
        "SELECT f_table_name, f_geometry_column, type, srid FROM geometry_columns WHERE f_table_schema = 'public'",
    )
    assert sorted(geometry) == sorted(source_geometry)
    trips = dict(
        env.query(
            "wh",
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'fleet_bronze' AND table_name = 'trips'",
        )
    )
    assert trips["distance_km"] == "numeric"
    assert "distance_m" not in trips
    src_m = env.query("source", "SELECT sum(distance_m) FROM public.trips")[0][0]
    dst_km = env.query("wh", "SELECT sum(distance_km) FROM fleet_bronze.trips")[0][0]
    assert dst_km * 1000 == src_m  # type: ignore[operator]

    # Up to date: nothing to generate. A column the source gains becomes the next migration.
    with (
        psycopg.connect(app_conninfo(), autocommit=True) as source,  # type: ignore[call-arg]
        psycopg.connect(env.warehouse_admin, autocommit=True) as warehouse,
    ):
        assert generate_bronze_migration(catalog, source, warehouse, sql_dir) is None
        env.query("source", "ALTER TABLE public.alarms ADD COLUMN severity smallint")
        change = generate_bronze_migration(catalog, source, warehouse, sql_dir)
    assert change is not None
    assert (change.path.name, change.created, change.added) == (
        "0200_bronze_changes.sql",
        [],
        ["alarms.severity"],
    )
    assert migrate(catalog, WarehouseSettings(), sql_dir).applied == ["0200_bronze_changes.sql"]  # type: ignore[call-arg]


@pytest.mark.usefixtures("env")
def test_generate_refuses_while_an_earlier_migration_is_not_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    seed_fleet()
    monkeypatch.setenv("DWH_SQL_DIR", str(SQL_DIR))

    result = runner.invoke(app, ["migrations", "generate", "fleet"])

    assert result.exit_code == 1
    assert "0100_bronze.sql, 0110_deleted_at.sql not applied yet: run `dwh migrate fleet` first" in " ".join(
        result.output.split()
    )


@pytest.mark.usefixtures("env")
def test_init_on_a_schema_without_tables_fails_naming_it_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "fleet.yaml"

    result = runner.invoke(
        app, ["init", "fleet", "--from-source", "--schema", "nothing_here", "--out", str(out)]
    )

    assert result.exit_code == 1
    assert "source schema(s) nothing_here hold no tables" in " ".join(result.output.split())
    assert not out.exists()


def test_a_source_name_with_a_line_break_stays_inside_its_comment(env: Env, tmp_path: Path) -> None:
    """A constraint name is free text; written raw after `#` it would add catalog entries."""
    name = "widgets_pkey\n  evil:\n    mode: snapshot\n    key: [id]\n  #"
    env.query("source", "CREATE TABLE public.widgets (id int NOT NULL, label text)")
    env.query("source", f'ALTER TABLE public.widgets ADD CONSTRAINT "{name}" PRIMARY KEY (id)')
    out = tmp_path / "shop.yaml"

    result = runner.invoke(app, ["init", "shop", "--from-source", "--out", str(out)])

    assert result.exit_code == 0, result.output
    catalog = load_catalog("shop", tmp_path)
    assert [t.name for t in catalog.tables] == ["widgets"]
    assert "PRIMARY KEY widgets_pkey\\x0a  evil:\\x0a" in out.read_text()
