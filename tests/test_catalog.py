"""Catalog validation: a bad catalog is refused with file, table, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from dwh.core.catalog import CatalogError, Mode, load_catalog, parse_catalog
from tests.conftest import PIPELINES_DIR

HEADER = "pipeline: shop\ntables:\n"


def _parse(body: str) -> None:
    parse_catalog(HEADER + body, Path("pipelines/shop.yaml"))


def test_shipped_fleet_catalog_declares_the_seed_decisions() -> None:
    catalog = load_catalog("fleet", PIPELINES_DIR)
    modes = {t.name: t.mode for t in catalog.tables}
    assert modes == {
        "devices": Mode.SNAPSHOT,
        "live_positions": Mode.SNAPSHOT,
        "geofences": Mode.SNAPSHOT,
        "position_history": Mode.APPEND,
        "trips": Mode.APPEND,
        "alarms": Mode.APPEND,
    }
    assert {t.watermark for t in catalog.tables if t.mode.incremental} == {"recorded_at"}
    assert catalog.table("trips").columns == {"distance_km": "distance_m / 1000.0"}
    assert (catalog.bronze_schema, catalog.control_schema, catalog.owner_role, catalog.ro_role) == (
        "fleet_bronze",
        "fleet_control",
        "fleet_owner",
        "fleet_ro",
    )


def test_incremental_table_without_watermark_names_table_line_and_field() -> None:
    with pytest.raises(CatalogError) as caught:
        _parse("  customers:\n    mode: snapshot\n  orders:\n    mode: append\n    key: [order_id]\n")
    message = str(caught.value)
    assert "pipelines/shop.yaml" in message
    assert "table 'orders', line 5" in message
    assert "needs a watermark column" in message


def test_incremental_table_without_key_is_refused() -> None:
    with pytest.raises(CatalogError, match=r"table 'orders'.*needs a natural key"):
        _parse("  orders:\n    mode: merge\n    watermark: updated_at\n")


def test_unknown_mode_and_misspelled_field_are_refused() -> None:
    with pytest.raises(CatalogError) as caught:
        _parse("  orders:\n    mode: upsert\n    watermrk: created_at\n")
    message = str(caught.value)
    assert "field mode" in message
    assert "field watermrk: Extra inputs are not permitted" in message


def test_watermark_must_not_be_an_expression_and_names_are_identifiers() -> None:
    with pytest.raises(CatalogError, match="must be a plain source column"):
        _parse(
            "  orders:\n    mode: append\n    watermark: ts\n    key: [id]\n    columns:\n      ts: now()\n"
        )
    with pytest.raises(CatalogError, match=r"field key\.0"):
        _parse('  orders:\n    mode: append\n    watermark: ts\n    key: ["id; drop table x"]\n')


def test_unknown_table_and_missing_catalog_name_what_exists() -> None:
    catalog = load_catalog("fleet", PIPELINES_DIR)
    with pytest.raises(CatalogError, match=r"no table 'trucks' \(known: devices, "):
        catalog.select(["trucks"])
    with pytest.raises(CatalogError, match=r"no catalog for pipeline 'shop' .*available: \['fleet'"):
        load_catalog("shop", PIPELINES_DIR)


@pytest.mark.parametrize("spec", ["append", "[1, 2]", "5"])
def test_a_table_that_is_not_a_mapping_is_a_catalog_error_naming_table_and_line(
    tmp_path: Path, spec: str
) -> None:
    """Never a TypeError: the flows retry those as if they were transient."""
    path = tmp_path / "shop.yaml"
    path.write_text(f"pipeline: shop\ntables:\n  orders:\n    mode: snapshot\n  trips: {spec}\n")
    with pytest.raises(CatalogError, match=r"shop\.yaml: table 'trips', line 5: expected a mapping"):
        parse_catalog(path.read_text(), path)


EXPORT_BASE = (
    "pipeline: p\nsource_schema: public\ntables:\n  t: {mode: snapshot, key: [id]}\nexport:\n  documents:\n"
)


def test_export_paths_take_the_viewers_shard_and_a_stamp_document_only_in_their_place() -> None:
    catalog = parse_catalog(
        EXPORT_BASE
        + "    users: users/{shard}/{id}.json\n    metadata: {path: metadata.json, each_publish: true}\n",
        Path("p.yaml"),
    )
    assert catalog.export is not None
    users, metadata = catalog.export.documents
    assert (users.per_entity, users.each_publish, metadata.each_publish) == (True, False, True)

    with pytest.raises(CatalogError, match=r"has \{shard\} without \{id\}"):
        parse_catalog(EXPORT_BASE + "    users: users/{shard}/all.json\n", Path("p.yaml"))
    with pytest.raises(CatalogError, match="each_publish is for a single document"):
        parse_catalog(
            EXPORT_BASE + "    users: {path: 'users/{id}.json', each_publish: true}\n", Path("p.yaml")
        )
    with pytest.raises(CatalogError, match=r"only \{id\}, \{fanout\} and \{shard\} exist"):
        parse_catalog(EXPORT_BASE + "    users: users/{hash}/{id}.json\n", Path("p.yaml"))


def test_delete_reconciliation_is_refused_on_a_snapshot_table() -> None:
    with pytest.raises(
        CatalogError, match=r"table 'orders'.*reconcile_deletes needs an append or merge table"
    ):
        _parse("  orders:\n    mode: snapshot\n    key: [id]\n    reconcile_deletes: true\n")
