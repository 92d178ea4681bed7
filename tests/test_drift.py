"""`dwh drift` and the extract's drift check: one implementation, real PostGIS."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from dwh.cli import app
from dwh.core.catalog import load_catalog
from dwh.ingest.drift import Column, compare_table
from dwh.ingest.report import IngestFailedError
from flows.ingest import ingest
from tests.conftest import PIPELINES_DIR, SQL_DIR, Env, seed_fleet

pytestmark = pytest.mark.usefixtures("prefect_harness")
runner = CliRunner()


def _drift() -> tuple[int, str]:
    result = runner.invoke(app, ["drift", "fleet"], env={"COLUMNS": "400"})
    text = re.sub("[\u2500-\u257f]", " ", result.output)  # table borders
    return result.exit_code, " ".join(text.split())


def test_no_drift_on_a_fresh_pipeline_exits_zero(env: Env) -> None:
    env.migrate()
    seed_fleet()

    code, output = _drift()

    assert code == 0, output
    assert "fleet: no difference that loses data" in output


def test_added_nullable_column_is_reported_by_name_and_left_out_as_the_catalog_says(env: Env) -> None:
    env.migrate()
    counts = seed_fleet()
    env.query("source", "ALTER TABLE public.alarms ADD COLUMN severity smallint")

    code, output = _drift()

    assert code == 0, output
    assert "alarms severity added in source warn" in output
    assert "source column 'severity' (smallint) is not in bronze" in output
    summary = ingest("fleet", tables=["alarms"])
    assert {t.table: t.rows_loaded for t in summary.tables} == {"alarms": counts["alarms"]}
    assert env.query(
        "wh",
        "SELECT count(*) FROM information_schema.columns"
        " WHERE table_schema = 'fleet_bronze' AND table_name = 'alarms' AND column_name = 'severity'",
    ) == [(0,)]


def test_renamed_column_fails_its_table_by_name_with_nothing_loaded_and_others_load(env: Env) -> None:
    env.migrate()
    counts = seed_fleet()
    env.query("source", "ALTER TABLE public.trips RENAME COLUMN max_speed_kmh TO top_speed_kmh")

    code, output = _drift()

    assert code == 1
    assert "trips max_speed_kmh renamed error" in output
    assert "(renamed to 'top_speed_kmh' in the source?)" in output
    assert "would lose or corrupt data" in output
    with pytest.raises(IngestFailedError) as caught:
        ingest("fleet")
    by_table = {t.table: t for t in caught.value.summary.tables}
    assert by_table["trips"].status == "failed"
    assert "table fleet.trips: bronze column 'max_speed_kmh' has no source column" in str(
        by_table["trips"].error
    )
    assert "top_speed_kmh" in str(by_table["trips"].error)
    assert env.count("wh", "fleet_bronze.trips") == 0
    assert env.location_keys("fleet", "exports", "trips") == []
    loaded = {t for t, o in by_table.items() if o.status == "loaded"}
    assert loaded == {"devices", "live_positions", "geofences", "position_history", "alarms"}
    assert env.count("wh", "fleet_bronze.alarms") == counts["alarms"]


def test_unit_conversion_pointing_at_a_renamed_column_is_named_by_drift_and_extract(env: Env) -> None:
    env.migrate()
    seed_fleet()
    env.query("source", "ALTER TABLE public.trips RENAME COLUMN distance_m TO distance_metres")

    code, output = _drift()

    assert code == 1
    assert "trips distance_km expression broken error" in output
    assert 'column "distance_m" does not exist' in output
    with pytest.raises(IngestFailedError) as caught:
        ingest("fleet", tables=["trips"])
    (trips,) = caught.value.summary.tables
    assert "expression for bronze column 'distance_km' (distance_m / 1000.0)" in str(trips.error)
    assert env.count("wh", "fleet_bronze.trips") == 0


def _col(name: str, kind: str, *, not_null: bool = False) -> Column:
    return Column(name, kind, not_null)


@pytest.mark.parametrize(
    ("source_type", "bronze_type", "severity", "words"),
    [
        ("geometry(Point,3857)", "geometry(Point,4326)", "error", "SRID 3857 in the source, 4326 in bronze"),
        (
            "timestamp without time zone",
            "timestamp with time zone",
            "error",
            "shift by the session time zone",
        ),
        ("numeric(10,4)", "numeric(6,2)", "error", "rounded to 2 decimals"),
        ("double precision", "real", "error", "dropped silently"),
        ("text", "numeric(6,2)", "warn", "fails naming file, line and column"),
        ("integer", "bigint", "info", "bronze holds every value"),
    ],
)
def test_type_and_srid_changes_are_errors_only_when_values_change_silently(
    source_type: str, bronze_type: str, severity: str, words: str
) -> None:
    catalog = load_catalog("fleet", PIPELINES_DIR)
    table = catalog.table("alarms")
    bronze = [_col("alarm_id", "bigint", not_null=True), _col("geom", bronze_type)]
    source = [
        _col("alarm_id", "bigint", not_null=True),
        _col("geom", source_type),
        _col("recorded_at", "timestamptz"),
    ]

    findings = compare_table(catalog, table, source, bronze, {})

    (finding,) = [f for f in findings if f.column != "recorded_at"]
    assert (finding.column, finding.severity) == ("geom", severity)
    assert words in finding.detail


def test_column_nullable_in_source_but_not_in_bronze_is_a_warning_naming_it() -> None:
    catalog = load_catalog("fleet", PIPELINES_DIR)
    table = catalog.table("devices")
    bronze = [_col("device_id", "bigint", not_null=True), _col("name", "text", not_null=True)]
    source = [_col("device_id", "bigint", not_null=True), _col("name", "text")]

    (finding,) = compare_table(catalog, table, source, bronze, {})

    assert (finding.column, finding.change, finding.severity) == ("name", "nullability changed", "warn")


INJECTION = (
    "distance_m / 1000.0 AS probe FROM public.trips LIMIT 0; CREATE TABLE public.injected(x int); SELECT 1"
)


def _catalog_with(tmp_path: Path, expression: str) -> Path:
    text = (PIPELINES_DIR / "fleet.yaml").read_text(encoding="utf-8")
    original = next(line for line in text.splitlines() if line.strip().startswith("distance_km:"))
    indent = original[: len(original) - len(original.lstrip())]
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "fleet.yaml").write_text(
        text.replace(original, f"{indent}distance_km: {json.dumps(expression)}"), encoding="utf-8"
    )
    return folder


def _injected(env: Env) -> bool:
    return bool(env.query("source", "SELECT to_regclass('public.injected') IS NOT NULL")[0][0])


def test_a_columns_expression_with_a_second_statement_is_refused_by_name_and_never_runs(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.migrate()
    seed_fleet()
    monkeypatch.setenv("DWH_PIPELINES_DIR", str(_catalog_with(tmp_path, INJECTION)))

    code, output = _drift()

    assert code == 1
    assert "fleet.yaml" in output
    assert "trips" in output
    assert "columns.distance_km: must be one SQL expression" in output
    assert not _injected(env), "the second statement ran on the source"


def test_the_expression_probe_and_the_extract_can_change_nothing_on_the_source(env: Env) -> None:
    """Past the catalog's check (a spec built without it), the server refuses it too."""
    from dwh.ingest.drift import probe_expressions  # noqa: PLC0415
    from dwh.ingest.extract import extract_table  # noqa: PLC0415

    env.migrate()
    seed_fleet()
    env.query(
        "source",
        "CREATE FUNCTION public.write_something() RETURNS int LANGUAGE sql AS "
        "$$ CREATE TABLE public.injected(x int); SELECT 1 $$",
    )
    engine = env.engine()
    trips = engine.catalog.table("trips")
    spec = trips.model_copy(update={"columns": {**trips.columns, "distance_km": INJECTION}})
    with psycopg.connect(engine.source_conninfo, autocommit=True) as source:
        errors = probe_expressions(source, SQL_DIR, engine.catalog, spec)
    assert "cannot insert multiple commands into a prepared statement" in errors["distance_km"], errors
    assert not _injected(env)
    # The extract's own session is read-only too: a writing function in an expression fails it.
    spec = trips.model_copy(update={"columns": {**trips.columns, "distance_km": "public.write_something()"}})
    with pytest.raises(Exception, match="read-only transaction"):
        extract_table(engine, spec)
    assert not _injected(env)
