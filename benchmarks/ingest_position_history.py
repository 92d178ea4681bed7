"""Benchmark: `ingest` of position_history against the raw COPY limit on the same data.

One run, one machine, same cluster:
  * raw limit  = COPY (extract SELECT) TO STDOUT piped into COPY staging FROM STDIN and
                 INSERT … ON CONFLICT into an empty bronze copy (no storage, no Prefect);
  * ours/local = the `ingest` flow end to end (recover → extract → load → move) with
                 file:// storage;
  * ours/s3    = the same through the S3 API (moto server over HTTP);
  * storage floor = a plain boto3 multipart PUT, then a streamed GET, of the very bytes
                 ours/local wrote (its parts in processed/) to the same endpoint: what
                 the S3 API costs by itself, so `ratio_s3_floor` = ours/s3 / (raw limit +
                 storage floor) separates what moto costs from what we cost;
  * peak RSS of a process running `ingest` at a small and a large table size.
Each timed phase starts on a settled cluster: after a CHECKPOINT, with the databases
of the phases before it dropped, whose fresh rows autovacuum would otherwise work
through beside it.

Usage: uv run python benchmarks/ingest_position_history.py [--rows 2000000] [--small 500000]
The last line is machine-readable:
  RESULT ratio_local=<x> ratio_s3=<y> ratio_s3_floor=<z> storage_floor_s=<f> rss_mb_small=<a> rss_mb_large=<b>
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import devstack  # noqa: E402
from benchmarks.scratch import fresh_databases, with_db  # noqa: E402
from dwh.core.catalog import load_catalog  # noqa: E402
from dwh.core.migrate import migrate  # noqa: E402
from dwh.core.settings import SeedSettings, SourceSettings, WarehouseSettings  # noqa: E402
from dwh.ingest.extract import plan_columns  # noqa: E402
from dwh.onboarding.seed import seed_source  # noqa: E402


def _app_conninfo() -> str:
    """The source application's role (DWH_SEED_URL): it writes sample rows; the flows only read."""
    return SeedSettings().conninfo(SourceSettings())  # type: ignore[call-arg]


TABLE = "position_history"
RUNNER = """
import json, resource, sys, time
from flows.ingest import ingest
started = time.perf_counter()
summary = ingest("fleet", tables=["position_history"])
seconds = time.perf_counter() - started
(table,) = summary.tables
print(json.dumps({"seconds": seconds, "rows": table.rows_loaded,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _apply(env: dict[str, str]) -> None:
    os.environ.update(env)


def _prepare(stack_env: dict[str, str], rows: int) -> dict[str, str]:
    env = fresh_databases(stack_env)
    _apply(env)
    migrate(load_catalog("fleet", ROOT / "pipelines"), WarehouseSettings(), ROOT / "sql")  # type: ignore[call-arg]
    started = time.perf_counter()
    seed_source(_app_conninfo(), "fleet", rows=rows, sql_dir=ROOT / "sql")
    print(f"seeded {rows:,} position rows in {time.perf_counter() - started:.1f} s", flush=True)
    with psycopg.connect(_app_conninfo(), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE public.position_history")
    return env


def _settle(stack_env: dict[str, str], drop: tuple[str, ...] = ()) -> None:
    """CHECKPOINT, after dropping a finished phase's databases (`drop`: their URLs).

    Every timed phase then starts on a settled cluster: no autovacuum of an earlier
    phase's millions of fresh rows running beside it, no dirty buffers of it to write.
    """
    names = {url.rpartition("/")[2] for url in drop}
    with psycopg.connect(with_db(stack_env["DWH_WAREHOUSE_ADMIN_URL"], "postgres"), autocommit=True) as conn:
        for name in sorted(names):
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute("CHECKPOINT")


def raw_limit(env: dict[str, str]) -> tuple[float, int]:
    """COPY TO → staged COPY FROM → INSERT … ON CONFLICT, piped in memory, no storage."""
    _apply(env)
    catalog = load_catalog("fleet", ROOT / "pipelines")
    table = catalog.table(TABLE)
    admin = env["DWH_WAREHOUSE_ADMIN_URL"]
    with (
        psycopg.connect(_app_conninfo(), autocommit=True) as source,
        psycopg.connect(admin) as warehouse,
    ):
        plan = plan_columns(catalog, table, source, warehouse, ROOT / "sql")
        columns = sql.SQL(", ").join(map(sql.Identifier, plan.columns))
        warehouse.execute("CREATE TABLE raw_target (LIKE fleet_bronze.position_history INCLUDING ALL)")
        warehouse.commit()
        started = time.perf_counter()
        warehouse.execute(
            sql.SQL(
                "CREATE TEMP TABLE stage ON COMMIT DROP AS SELECT {} FROM raw_target WITH NO DATA"
            ).format(columns)
        )
        copy_out = sql.SQL(
            "COPY (SELECT {} FROM public.position_history WHERE recorded_at > '2000-01-01' "
            "AND recorded_at <= now() ORDER BY recorded_at) TO STDOUT WITH (FORMAT csv)"
        ).format(plan.select)
        copy_in = sql.SQL("COPY stage ({}) FROM STDIN WITH (FORMAT csv)").format(columns)
        with (
            source.cursor().copy(copy_out) as out,
            warehouse.cursor().copy(copy_in) as into,
        ):
            for row in out:
                into.write(row)
        inserted = warehouse.execute(
            sql.SQL(
                "INSERT INTO raw_target ({0}) SELECT {0} FROM stage ON CONFLICT (device_id, gps_time) DO NOTHING"
            ).format(columns)
        ).rowcount
        warehouse.commit()
        seconds = time.perf_counter() - started
        warehouse.execute("DROP TABLE raw_target")
        warehouse.commit()
    return seconds, inserted


def ours(env: dict[str, str], storage_url: str) -> dict[str, float]:
    """`ingest` in a child process, so its peak RSS is its own."""
    child_env = {**env, "DWH_STORAGE_URL": storage_url}
    done = subprocess.run(
        [sys.executable, "-c", RUNNER], env=child_env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"ingest failed:\n{done.stderr[-4000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def storage_floor(env: dict[str, str], parts: list[Path]) -> tuple[float, int]:
    """Seconds to PUT (multipart) then GET (streamed) `parts` with a plain boto3 client."""
    import boto3  # noqa: PLC0415

    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    bucket, prefix = devstack.S3_BUCKET, f"bench-floor/{uuid.uuid4().hex[:8]}"
    size = 0
    started = time.perf_counter()
    for part in parts:
        client.upload_file(str(part), bucket, f"{prefix}/{part.name}")
    for part in parts:
        body = client.get_object(Bucket=bucket, Key=f"{prefix}/{part.name}")["Body"]
        for chunk in body.iter_chunks(2**20):
            size += len(chunk)
    seconds = time.perf_counter() - started
    for part in parts:
        client.delete_object(Bucket=bucket, Key=f"{prefix}/{part.name}")
    return seconds, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--small", type=int, default=500_000)
    args = parser.parse_args()

    state_dir = Path(tempfile.mkdtemp(prefix="dwh-bench-", dir="/tmp"))
    state_dir.chmod(0o755)
    storage = Path(tempfile.mkdtemp(prefix="dwh-bench-storage-"))
    try:
        devstack.up(state_dir, s3=True, prefect=True)
        stack_env = devstack.env(state_dir)
        stack_env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

        small_env = _prepare(stack_env, args.small)
        small = ours(small_env, f"file://{storage}/small")
        print(
            f"ingest {args.small:,} rows (local): {small['seconds']:.1f} s, peak RSS {small['rss_mb']:.0f} MB"
        )
        _settle(stack_env, drop=(small_env["DWH_SOURCE_URL"], small_env["DWH_WAREHOUSE_URL"]))

        large_env = _prepare(stack_env, args.rows)
        _settle(stack_env)
        raw_seconds, raw_rows = raw_limit(large_env)
        print(f"raw limit {raw_rows:,} rows: {raw_seconds:.1f} s", flush=True)
        _settle(stack_env)
        local = ours(large_env, f"file://{storage}/large")
        print(
            f"ingest {local['rows']:,.0f} rows (local): {local['seconds']:.1f} s, peak RSS {local['rss_mb']:.0f} MB"
        )
        _settle(stack_env, drop=(large_env["DWH_WAREHOUSE_URL"],))  # the source stays: S3 reads its rows

        s3_env = fresh_databases(stack_env, source=False)  # a new warehouse, the same source data
        s3_env["DWH_SOURCE_URL"] = large_env["DWH_SOURCE_URL"]
        s3_env["DWH_SEED_URL"] = large_env["DWH_SEED_URL"]
        _apply(s3_env)
        migrate(load_catalog("fleet", ROOT / "pipelines"), WarehouseSettings(), ROOT / "sql")  # type: ignore[call-arg]
        s3 = ours(s3_env, "s3://dwh-dev/bench")
        print(
            f"ingest {s3['rows']:,.0f} rows (S3 API): {s3['seconds']:.1f} s, peak RSS {s3['rss_mb']:.0f} MB"
        )

        _settle(stack_env, drop=(s3_env["DWH_WAREHOUSE_URL"],))
        parts = sorted((storage / "large").glob(f"fleet/processed/{TABLE}/*.csv"))
        floor_seconds, floor_bytes = storage_floor(stack_env, parts)
        print(
            f"storage floor: PUT + GET of {len(parts)} part(s), {floor_bytes / 2**20:,.0f} MB "
            f"(the bytes ours/local wrote): {floor_seconds:.1f} s"
        )

        ratio_local = local["seconds"] / raw_seconds
        ratio_s3 = s3["seconds"] / raw_seconds
        ratio_s3_floor = s3["seconds"] / (raw_seconds + floor_seconds)
        print(
            f"ratio to the raw limit: local {ratio_local:.2f}, S3 {ratio_s3:.2f}, "
            f"S3 to raw limit + storage floor {ratio_s3_floor:.2f}"
        )
        print(
            f"RESULT ratio_local={ratio_local:.3f} ratio_s3={ratio_s3:.3f} "
            f"ratio_s3_floor={ratio_s3_floor:.3f} storage_floor_s={floor_seconds:.1f} "
            f"rss_mb_small={small['rss_mb']:.0f} rss_mb_large={local['rss_mb']:.0f}"
        )
    finally:
        devstack.down(state_dir, purge=True)
        shutil.rmtree(storage, ignore_errors=True)  # ~0.5 GB of parts per run


if __name__ == "__main__":
    main()
