"""Benchmark: the osm_notes star-schema ETL, first build and a ~10k-action increment.

One run, one machine, a throwaway cluster of its own:
  * seed ~1M note actions (`--notes`, ~2.56 actions a note) and ingest them to bronze
    with the engine (extract → local storage → load, no Prefect);
  * transform, first build (facts empty): every note, dimension and mark;
  * datamarts: full refresh of the marked (= all) entities;
  * seed an increment (`--increment-notes`: new notes, closes/reopens of existing ones,
    back-filled comments, renames), ingest, transform incrementally, refresh the marked
    datamart rows, then a full rebuild, and check both give the same tables.

Usage: uv run python benchmarks/osm_notes_etl.py [--notes 390000] [--increment-notes 3300]
The last line is machine-readable:
  RESULT first_rows=<n> first_s=<s> first_rows_per_s=<r> incr_rows=<n> incr_s=<s>
         incr_rows_per_s=<r> marts_full_s=<s> marts_incr_s=<s> run_s=<s>
         marts_rebuild_s=<s> state_s=<s> sessions=<n> marts_incr_{countries,global,users}_s=<s>
  (run_s: the increment's transform plus its marked datamart refresh, as one
  `osm_notes_etl` run now does both; marts_incr_s: that refresh, per datamart in
  marts_incr_<name>_s; state_s: the transform steps that keep the datamart state,
  part of incr_s; marts_rebuild_s: every entity recomputed; sessions: DWH_DATAMART_SESSIONS,
  the sessions a datamart with a PARALLEL plan shares its targets over)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import devstack  # noqa: E402
from benchmarks.scratch import fresh_databases  # noqa: E402
from dwh.analytics.datamarts import refresh_datamarts  # noqa: E402
from dwh.analytics.transform import TransformResult, run_transform  # noqa: E402
from dwh.core.catalog import load_catalog  # noqa: E402
from dwh.core.migrate import migrate  # noqa: E402
from dwh.core.settings import (  # noqa: E402
    DatamartSettings,
    SeedSettings,
    SourceSettings,
    WarehouseSettings,
)
from dwh.ingest.engine import Engine  # noqa: E402
from dwh.ingest.extract import extract_table  # noqa: E402
from dwh.ingest.load import load_pending  # noqa: E402
from dwh.onboarding.seed import seed_source  # noqa: E402


def _app_conninfo() -> str:
    """The source application's role (DWH_SEED_URL): it writes sample rows; the flows only read."""
    return SeedSettings().conninfo(SourceSettings())  # type: ignore[call-arg]


PIPELINE = "osm_notes"
SQL_DIR = ROOT / "sql"
DATAMARTS = {
    "datamart_users": "user_id",
    "datamart_user_ranks": "user_id",
    "datamart_countries": "country_id",
    "datamart_global": "id",
}


def _seed(notes: int) -> dict[str, int]:
    started = time.perf_counter()
    counts = seed_source(_app_conninfo(), PIPELINE, rows=0, sql_dir=SQL_DIR, notes=notes)
    print(
        f"seeded {notes:,} notes: {counts['note_comments']:,} comments in total, "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return counts


def _ingest() -> None:
    started = time.perf_counter()
    engine = Engine.from_settings(PIPELINE)
    for table in engine.catalog.tables:
        extract_table(engine, table)
        load_pending(engine, table)
    print(f"ingested to bronze in {time.perf_counter() - started:.1f} s", flush=True)


def _transform() -> TransformResult:
    catalog = load_catalog(PIPELINE, ROOT / "pipelines")
    result = run_transform(catalog, WarehouseSettings().owner_conninfo(PIPELINE), SQL_DIR)  # type: ignore[call-arg]
    print(result.describe(), flush=True)
    for step in result.steps:
        print(f"    {step.seconds:7.2f} s  {step.name}")
    return result


def _datamarts(*, full_rebuild: bool) -> tuple[float, dict[str, float]]:
    """Refresh every datamart; the wall time and each datamart's own seconds."""
    catalog = load_catalog(PIPELINE, ROOT / "pipelines")
    started = time.perf_counter()
    each = {}
    for result in refresh_datamarts(
        catalog,
        WarehouseSettings().owner_conninfo(PIPELINE),  # type: ignore[call-arg]
        SQL_DIR,
        full_rebuild=full_rebuild,
    ):
        print(f"    {result.describe()}", flush=True)
        each[result.datamart] = result.seconds
    return time.perf_counter() - started, each


def _datamart_rows() -> dict[str, dict[str, str]]:
    """Each datamart table's rows as {key: md5 of the row}, to compare and to name differences."""
    rows: dict[str, dict[str, str]] = {}
    with psycopg.connect(os.environ["DWH_WAREHOUSE_ADMIN_URL"]) as conn:
        for table, key in DATAMARTS.items():
            found = conn.execute(
                sql.SQL("SELECT (to_jsonb(t) -> {})::text, md5(t::text) FROM {} AS t").format(
                    sql.Literal(key), sql.Identifier(f"{PIPELINE}_dwh", table)
                )
            ).fetchall()
            rows[table] = {str(key): str(digest) for key, digest in found}
    return rows


def _differences(incremental: dict[str, dict[str, str]], rebuilt: dict[str, dict[str, str]]) -> list[str]:
    """The rows (table and key) in which the incremental refresh and the rebuild differ."""
    found = []
    for table, rows in incremental.items():
        keys = sorted(set(rows) | set(rebuilt[table]))
        found += [f"{table} {key}" for key in keys if rows.get(key) != rebuilt[table].get(key)]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--notes", type=int, default=390_000, help="notes of the first build (~2.56 actions each)"
    )
    parser.add_argument("--increment-notes", type=int, default=3_300, help="new notes of the increment")
    args = parser.parse_args()

    state_dir = Path(tempfile.mkdtemp(prefix="dwh-bench-", dir="/tmp"))
    state_dir.chmod(0o755)
    storage = Path(tempfile.mkdtemp(prefix="dwh-bench-storage-"))
    try:
        devstack.up(state_dir)
        os.environ.update(fresh_databases(devstack.env(state_dir)) | {"DWH_STORAGE_URL": f"file://{storage}"})
        migrate(load_catalog(PIPELINE, ROOT / "pipelines"), WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]

        _seed(args.notes)
        _ingest()
        first = _transform()
        print("datamarts after the first build (every entity is marked):")
        marts_full, _ = _datamarts(full_rebuild=False)

        _seed(args.increment_notes)
        _ingest()
        incr = _transform()
        print("datamarts, marked entities:")
        marts_incr, marts_incr_each = _datamarts(full_rebuild=False)
        incremental = _datamart_rows()
        print("datamarts, full rebuild:")
        marts_rebuild, _ = _datamarts(full_rebuild=True)
        differences = _differences(incremental, _datamart_rows())
        print(f"incremental refresh == full rebuild: {not differences}")
        if differences:
            sys.exit(
                f"datamarts differ between the incremental refresh and the full rebuild: {differences[:10]}"
            )

        # the transform's share that keeps the datamart state (in incr_s already)
        state_s = sum(step.seconds for step in incr.steps if "mart_state" in step.name)
        first_rate = first.facts_inserted / first.seconds
        incr_rate = incr.comments_in_window / incr.seconds
        print(
            f"RESULT first_rows={first.facts_inserted} first_s={first.seconds:.1f} "
            f"first_rows_per_s={first_rate:.0f} incr_rows={incr.comments_in_window} incr_s={incr.seconds:.2f} "
            f"incr_rows_per_s={incr_rate:.0f} marts_full_s={marts_full:.1f} marts_incr_s={marts_incr:.1f} "
            f"run_s={incr.seconds + marts_incr:.1f} marts_rebuild_s={marts_rebuild:.1f} "
            f"state_s={state_s:.2f} sessions={DatamartSettings().sessions} "
            + " ".join(
                f"marts_incr_{name}_s={seconds:.1f}" for name, seconds in sorted(marts_incr_each.items())
            )
        )
    finally:
        devstack.down(state_dir, purge=True)
        shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":
    main()
