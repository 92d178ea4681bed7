"""Benchmark: JSON export of 100k users and 200 countries, full and incremental, local and S3.

One run, one machine, a throwaway cluster and moto S3 server of its own:
  * fill the osm_notes datamarts with synthetic rows (benchmarks/export_datamarts.sql);
  * the raw limit: the same documents rendered by the same queries and streamed out of
    PostgreSQL with COPY, written nowhere (what building JSON in the database costs),
    and again with one file written per document (the I/O floor of the layout);
  * a full export, a quiet run (nothing changed), and an incremental export after 1%
    of the users changed, first to a local directory, then through the S3 API (moto,
    whose single process serves ~100 requests/s: a smaller `--s3-users` by default).

Usage: uv run python benchmarks/export_json.py [--users 100000] [--countries 200] [--changed 1000]
The last line is machine-readable:
  RESULT docs=<n> raw_s=<s> raw_files_s=<s> full_local_s=<s> ratio_full_local=<r>
         ratio_full_local_files=<r> quiet_local_s=<s>
         incr_local_s=<s> s3_docs=<n> full_s3_s=<s> incr_s3_s=<s> incr_s3_requests=<n> rss_mb=<n>
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import devstack  # noqa: E402
from benchmarks.scratch import fresh_databases  # noqa: E402
from dwh.analytics.documents import Renderer  # noqa: E402
from dwh.analytics.export import ExportResult, export_json  # noqa: E402
from dwh.analytics.targets import S3Target, open_target  # noqa: E402
from dwh.core.catalog import load_catalog  # noqa: E402
from dwh.core.migrate import migrate  # noqa: E402
from dwh.core.settings import ExportSettings, WarehouseSettings  # noqa: E402

PIPELINE = "osm_notes"
SQL_DIR = ROOT / "sql"
FILL = Path(__file__).with_name("export_datamarts.sql")


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(os.environ["DWH_WAREHOUSE_ADMIN_URL"]) as conn:
        conn.execute(statement)


def _fill(users: int, countries: int) -> None:
    started = time.perf_counter()
    _admin(
        sql.SQL(FILL.read_text(encoding="utf-8")).format(
            users=sql.Literal(users), countries=sql.Literal(countries)
        )
    )
    print(
        f"datamarts filled: {users:,} users, {countries:,} countries, {time.perf_counter() - started:.1f} s",
        flush=True,
    )


def _raw_limit(files: Path | None) -> tuple[int, float]:
    """Every document rendered by the export's own queries and streamed out with COPY.

    With `files`, each document is also written to a file of its own (no validation,
    no checksums, no bookkeeping): the I/O floor of a one-file-per-entity layout.
    """
    catalog = load_catalog(PIPELINE, ROOT / "pipelines")
    renderer = Renderer(catalog, SQL_DIR)
    started, documents = time.perf_counter(), 0
    with psycopg.connect(os.environ["DWH_WAREHOUSE_ADMIN_URL"]) as conn, conn.cursor() as cur:
        for document in renderer.documents:
            query = sql.SQL("COPY (SELECT d.doc::text FROM ({}) AS d) TO STDOUT").format(
                renderer.query(document)
            )
            folder = files / document.name if files else None
            if folder:
                folder.mkdir(parents=True)
            with cur.copy(query) as copy:
                for (text,) in copy.rows():
                    documents += 1
                    if folder:
                        (folder / f"{documents}.json").write_text(text, encoding="utf-8")
    return documents, time.perf_counter() - started


REQUESTS: Counter[str] = Counter()


def _export(*, full: bool = False) -> ExportResult:
    """One export; on S3 every request it makes is counted by operation in REQUESTS."""
    catalog = load_catalog(PIPELINE, ROOT / "pipelines")
    settings = ExportSettings()
    target = open_target(settings, PIPELINE)
    REQUESTS.clear()
    if isinstance(target, S3Target):
        target.client.meta.events.register(
            "before-call.s3.*", lambda model, **_: REQUESTS.update([model.name]), unique_id="dwh-bench-count"
        )  # unique_id: the S3 client is shared between targets, count each request once
    return export_json(
        catalog,
        WarehouseSettings().owner_conninfo(PIPELINE),  # type: ignore[call-arg]
        SQL_DIR,
        target,
        full=full,
        keep_versions=settings.keep_versions,
    )


def _requests() -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(REQUESTS.items())) or "none"


def _round(label: str, changed: int) -> tuple[float, float, float, int]:
    """Full, quiet and incremental export to DWH_EXPORT_URL; their seconds and the incremental's requests."""
    full = _export(full=True)
    print(f"{label} full:        {full.describe()}; S3 requests: {_requests()}", flush=True)
    quiet = _export()
    print(f"{label} quiet:       {quiet.describe()}; S3 requests: {_requests()}", flush=True)
    _admin(
        sql.SQL(
            "UPDATE osm_notes_dwh.datamart_users SET commented = commented + 1 WHERE user_id <= {}"
        ).format(sql.Literal(changed))
    )
    incr = _export()
    print(f"{label} incremental: {incr.describe()}; S3 requests: {_requests()}", flush=True)
    if incr.rendered["users"] != changed:
        sys.exit(f"incremental export rendered {incr.rendered['users']} users, expected {changed}")
    return full.seconds, quiet.seconds, incr.seconds, sum(REQUESTS.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--countries", type=int, default=200)
    parser.add_argument("--changed", type=int, default=1_000, help="users changed before the incremental run")
    parser.add_argument(
        "--s3-users", type=int, default=10_000, help="users of the S3 round (moto serves ~100 requests/s)"
    )
    args = parser.parse_args()

    state_dir = Path(tempfile.mkdtemp(prefix="dwh-bench-", dir="/tmp"))
    state_dir.chmod(0o755)
    output = Path(tempfile.mkdtemp(prefix="dwh-bench-json-"))
    try:
        devstack.up(state_dir, s3=True)
        os.environ.update(fresh_databases(devstack.env(state_dir), source=False))
        migrate(load_catalog(PIPELINE, ROOT / "pipelines"), WarehouseSettings(), SQL_DIR)  # type: ignore[call-arg]
        _fill(args.users, args.countries)

        documents, raw = _raw_limit(None)
        print(f"raw limit: {documents:,} documents rendered and streamed by COPY in {raw:.1f} s", flush=True)
        _, raw_files = _raw_limit(output / "raw")
        print(f"raw limit with files: the same, one file each, in {raw_files:.1f} s", flush=True)
        shutil.rmtree(output / "raw")

        os.environ["DWH_EXPORT_URL"] = f"file://{output}"
        full_local, quiet_local, incr_local, _ = _round("local", args.changed)
        _fill(args.s3_users, args.countries)
        os.environ["DWH_EXPORT_URL"] = f"s3://dwh-dev/bench-{uuid.uuid4().hex[:6]}"
        full_s3, _, incr_s3, incr_s3_requests = _round("s3", args.changed)
        s3_docs = args.s3_users + args.countries + 4

        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(
            f"RESULT docs={documents} raw_s={raw:.1f} raw_files_s={raw_files:.1f} full_local_s={full_local:.1f} "
            f"ratio_full_local={full_local / raw:.2f} ratio_full_local_files={full_local / raw_files:.2f} "
            f"quiet_local_s={quiet_local:.2f} "
            f"incr_local_s={incr_local:.2f} s3_docs={s3_docs} full_s3_s={full_s3:.1f} "
            f"incr_s3_s={incr_s3:.1f} incr_s3_requests={incr_s3_requests} rss_mb={rss_mb}"
        )
    finally:
        devstack.down(state_dir, purge=True)
        shutil.rmtree(output, ignore_errors=True)


if __name__ == "__main__":
    main()
