"""Benchmark: what a no-new-data `ingest` costs per table above a bare Prefect floor.

One run, one machine, one Prefect server (the dev stack's), for each N in `--tables`:
  * N generated append tables (a key, a payload, an insertion-time watermark with an
    index on it, as an incremental source table has, a few rows each) in a fresh
    source/warehouse pair with its own catalog and bronze migration; with `--no-index`
    the empty window is probed by scanning the (small) table instead, and with
    `--no-probe` as well (DWH_QUIET_PROBE_SCAN_MB=0) every table runs both subflows;
  * a first `ingest` loads them (not timed), so the next one finds no new data;
  * floor = a flow mapping one empty task per table, on the same task runner;
  * ours  = `ingest` of the N tables with nothing new to move.
Both run in a child process that has already imported what it runs, so the figures are
the flow runs alone (start-up is `dwh --help`'s and the first task's business).

Prefect 3.8 ends every flow run by joining its heartbeat thread, which sleeps in whole
seconds from the run's start: a run lasts a whole number of seconds plus a constant, so
the floor is ~1.2 s for 6 tasks and for 50 and ours steps by a second when its work
crosses one. Each pair is therefore run twice, with heartbeats (as deployed, `ratio`)
and without (`ratio_without_heartbeat`, the work alone).

Usage: uv run python benchmarks/orchestration.py [--tables 6 50] [--rows 20] [--repeat 1]
                                                  [--no-index [--no-probe]]
One machine-readable line per N:
  RESULT tables=<N> noop_s_per_table=<x> floor_s_per_table=<y> ratio=<x/y>
         ratio_without_heartbeat=<x'/y'> watermark_index=<yes|no> probe=<index|scan|off>
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import devstack  # noqa: E402
from benchmarks.scratch import fresh_databases  # noqa: E402
from dwh.core.catalog import load_catalog  # noqa: E402
from dwh.core.migrate import migrate  # noqa: E402
from dwh.core.settings import RunSettings, WarehouseSettings  # noqa: E402

PIPELINE = "orchestration_bench"
SHARED_SQL = ("common", "engine", "generate", "introspect")

# The children's switch: DWH_BENCH_HEARTBEAT=off runs the flow without its heartbeat thread.
HEARTBEATS = """
import os
from contextlib import nullcontext
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

def heartbeats():
    if os.environ.get("DWH_BENCH_HEARTBEAT") == "off":
        return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
    return nullcontext()
"""

FLOOR = (
    HEARTBEATS
    + """
import json, sys, time
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner
from dwh.core.settings import RunSettings

@task
def empty(table: str) -> str:
    return table

@flow(name="floor", task_runner=ThreadPoolTaskRunner(max_workers=RunSettings().max_parallel_tables))
def floor(tables: list[str]) -> list[str]:
    return [f.result() for f in empty.map(tables)]

tables = sys.argv[1:]
with heartbeats():
    started = time.perf_counter()
    done = floor(tables)
    seconds = time.perf_counter() - started
assert done == tables, done
print(json.dumps({"seconds": seconds}))
"""
)

OURS = (
    HEARTBEATS
    + """
import json, sys, time
from flows.ingest import ingest
with heartbeats():
    started = time.perf_counter()
    summary = ingest(sys.argv[1])
    seconds = time.perf_counter() - started
loaded = sum(t.rows_loaded for t in summary.tables)
print(json.dumps({"seconds": seconds, "rows": loaded, "tables": len(summary.tables)}))
"""
)


def _table_names(count: int) -> list[str]:
    return [f"t{i:03d}" for i in range(1, count + 1)]


def _pipeline_files(work: Path, tables: list[str]) -> tuple[Path, Path]:
    """A catalog and an SQL folder for the generated pipeline (shared SQL linked in)."""
    pipelines, sql_dir = work / "pipelines", work / "sql"
    pipelines.mkdir()
    migrations = sql_dir / PIPELINE / "migrations"
    migrations.mkdir(parents=True)
    for name in SHARED_SQL:
        (sql_dir / name).symlink_to(ROOT / "sql" / name)
    lines = [f"pipeline: {PIPELINE}", "source_schema: public", "cadence_minutes: 60", "tables:"]
    lines += [f"  {t}: {{mode: append, watermark: recorded_at, key: [id]}}" for t in tables]
    (pipelines / f"{PIPELINE}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ddl = [
        f"CREATE TABLE {{bronze}}.{t} (id bigint PRIMARY KEY, payload text NOT NULL, "
        "recorded_at timestamptz NOT NULL, _dwh_loaded_at timestamptz NOT NULL DEFAULT now());"
        for t in tables
    ]
    (migrations / "0100_bronze.sql").write_text("\n".join(ddl) + "\n", encoding="utf-8")
    return pipelines, sql_dir


def _prepare(
    stack_env: dict[str, str], count: int, rows: int, *, indexed: bool, probe: bool, work_root: Path
) -> dict[str, str]:
    """Fresh databases, N source tables with rows (`indexed`: on the watermark), the catalog, bronze.

    `probe` False: DWH_QUIET_PROBE_SCAN_MB=0, so an unindexed table is never probed. The
    catalog, SQL and storage go under `work_root` (the stack's state dir, purged with it).
    """
    tables = _table_names(count)
    work = Path(tempfile.mkdtemp(prefix=f"orch-{count}-", dir=work_root))
    pipelines, sql_dir = _pipeline_files(work, tables)
    env = {
        **fresh_databases(stack_env),
        "DWH_STORAGE_URL": f"file://{work / 'storage'}",
        "DWH_PIPELINES_DIR": str(pipelines),
        "DWH_SQL_DIR": str(sql_dir),
    }
    if not probe:
        env["DWH_QUIET_PROBE_SCAN_MB"] = "0"
    # As the source application: the flows' source role may only read (dwh preflight checks it).
    with psycopg.connect(env["DWH_SEED_URL"], autocommit=True) as conn:
        for table in tables:
            conn.execute(
                sql.SQL(
                    "CREATE TABLE public.{} (id bigint PRIMARY KEY, payload text NOT NULL, "
                    "recorded_at timestamptz NOT NULL DEFAULT now())"
                ).format(sql.Identifier(table))
            )
            conn.execute(
                sql.SQL(
                    "INSERT INTO public.{} (id, payload) SELECT g, md5(g::text) FROM generate_series(1, %s) g"
                ).format(sql.Identifier(table)),
                (rows,),
            )
            if indexed:
                conn.execute(sql.SQL("CREATE INDEX ON public.{} (recorded_at)").format(sql.Identifier(table)))
    os.environ.update(env)
    migrate(load_catalog(PIPELINE, pipelines), WarehouseSettings(), sql_dir)  # type: ignore[call-arg]
    return env


def _child(env: dict[str, str], code: str, *args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"child failed:\n{done.stderr[-4000:]}")
    # A run slowed by a retry (a transient failure on a loaded box) must say so.
    for line in done.stderr.splitlines():
        if " WARNING " in line or " ERROR " in line or "etry" in line:
            print(f"  child: {line.strip()[:300]}", flush=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@dataclass(frozen=True)
class Measured:
    """Best-of-repeat seconds of one N: floor and ours, with and without heartbeats."""

    floor: float
    noop: float
    floor_without_heartbeat: float
    noop_without_heartbeat: float


def _pair(env: dict[str, str], count: int) -> tuple[float, float]:
    """One floor run and one no-new-data ingest, in that order."""
    floor = _child(env, FLOOR, *_table_names(count))["seconds"]
    noop = _child(env, OURS, PIPELINE)
    if noop["rows"] != 0 or noop["tables"] != count:
        sys.exit(f"the no-new-data ingest moved {noop['rows']} rows over {noop['tables']} tables")
    return floor, noop["seconds"]


def measure(
    stack_env: dict[str, str],
    count: int,
    rows: int,
    repeat: int,
    *,
    indexed: bool,
    probe: bool,
    work_root: Path,
) -> Measured:
    """Best-of-`repeat` seconds of the floor and of a no-new-data ingest of `count` tables."""
    env = _prepare(stack_env, count, rows, indexed=indexed, probe=probe, work_root=work_root)
    first = _child(env, OURS, PIPELINE)
    if first["rows"] != count * rows:
        sys.exit(f"first ingest loaded {first['rows']} rows, expected {count * rows}")
    print(f"N={count}: first ingest loaded {first['rows']:,.0f} rows in {first['seconds']:.1f} s", flush=True)
    beating, quiet = [], []
    for _ in range(repeat):
        beating.append(_pair(env, count))
        quiet.append(_pair({**env, "DWH_BENCH_HEARTBEAT": "off"}, count))
        print(
            f"N={count}: floor {beating[-1][0]:.2f} s, no-new-data ingest {beating[-1][1]:.2f} s; "
            f"without heartbeats {quiet[-1][0]:.2f} s and {quiet[-1][1]:.2f} s",
            flush=True,
        )
    return Measured(
        floor=min(f for f, _ in beating),
        noop=min(n for _, n in beating),
        floor_without_heartbeat=min(f for f, _ in quiet),
        noop_without_heartbeat=min(n for _, n in quiet),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tables", type=int, nargs="+", default=[6, 50])
    parser.add_argument("--rows", type=int, default=20, help="rows per generated table")
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs each")
    parser.add_argument(
        "--no-index",
        action="store_true",
        help="no index on the watermark: an empty window is probed by scanning the small table",
    )
    parser.add_argument(
        "--no-probe",
        action="store_true",
        help="with --no-index: DWH_QUIET_PROBE_SCAN_MB=0, every table takes the extract and load subflows",
    )
    args = parser.parse_args()
    if args.no_probe and not args.no_index:
        parser.error("--no-probe needs --no-index (an indexed watermark is always probed)")
    probe = "index" if not args.no_index else "off" if args.no_probe else "scan"

    state_dir = Path(tempfile.mkdtemp(prefix="dwh-bench-", dir="/tmp"))
    state_dir.chmod(0o755)
    results = []
    try:
        devstack.up(state_dir, prefect=True)
        stack_env = {**os.environ, **devstack.env(state_dir), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        print(f"max parallel tables: {RunSettings().max_parallel_tables}", flush=True)
        for count in args.tables:
            measured = measure(
                stack_env,
                count,
                args.rows,
                args.repeat,
                indexed=not args.no_index,
                probe=not args.no_probe,
                work_root=state_dir,
            )
            results.append((count, measured))
    finally:
        devstack.down(state_dir, purge=True)
    for count, m in results:
        print(
            f"RESULT tables={count} noop_s_per_table={m.noop / count:.3f} "
            f"floor_s_per_table={m.floor / count:.3f} ratio={m.noop / m.floor:.2f} "
            f"ratio_without_heartbeat={m.noop_without_heartbeat / m.floor_without_heartbeat:.2f} "
            f"watermark_index={'no' if args.no_index else 'yes'} probe={probe}"
        )


if __name__ == "__main__":
    main()
