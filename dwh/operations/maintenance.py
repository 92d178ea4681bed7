"""Weekly maintenance: VACUUM ANALYZE, and retention of what may go (never processed/ by default).

The run log, Prefect artifacts and (only when asked) processed/ CSVs older than their
retention are removed; processed/ is the audit trail (seed §5.5), so its retention is
off unless a number of days is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from dwh.core.sqlfiles import engine_sql, read_sql
from dwh.ingest.engine import Engine
from dwh.ingest.load import run_parts
from dwh.ingest.parts import processed_prefix


@dataclass(frozen=True)
class MaintenanceResult:
    vacuumed: tuple[str, ...]
    runs_deleted: int
    artifacts_deleted: int
    processed_deleted: tuple[str, ...]


def vacuum_analyze(engine: Engine) -> list[str]:
    """VACUUM ANALYZE every table the owner owns (outside a transaction, as VACUUM needs)."""
    with psycopg.connect(engine.warehouse_conninfo, autocommit=True) as conn:
        query = read_sql(engine.sql_dir / "engine" / "vacuum_tables.sql")
        tables = [str(r[0]) for r in conn.execute(query, {"role": engine.catalog.owner_role}).fetchall()]
        for table in tables:
            schema, name = table.split(".", 1)
            conn.execute(
                sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(schema.strip('"'), name.strip('"')))
            )
    return tables


def prune_runs(engine: Engine, days: int) -> int:
    """Delete old finished runs, never one that still owns parts in exports/."""
    catalog = engine.catalog
    waiting = [
        run_id for t in catalog.tables for run_id in run_parts(engine.location, catalog.pipeline, t.name)
    ]
    with psycopg.connect(engine.warehouse_conninfo, autocommit=True) as conn:
        return conn.execute(
            engine_sql(engine.sql_dir, "prune_runs", catalog), {"days": days, "waiting_runs": waiting}
        ).rowcount


def prune_artifacts(pipeline: str, days: int) -> int:
    """Delete this pipeline's Prefect artifacts (ingest/verify/health summaries) past retention."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey  # noqa: PLC0415

    cutoff = datetime.now(UTC) - timedelta(days=days)
    suffix = pipeline.replace("_", "-")
    keys = [f"{kind}-{suffix}" for kind in ("ingest", "verify", "health", "maintenance")]
    deleted = 0
    with get_client(sync_client=True) as client:
        old = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)), limit=200
        )
        for artifact in old:
            if artifact.created is not None and artifact.created < cutoff:
                client.delete_artifact(artifact.id)
                deleted += 1
    return deleted


def prune_processed(engine: Engine, days: int) -> list[str]:
    """Opt-in: delete processed/ parts whose name stamps them older than `days`."""
    cutoff = datetime.now(UTC) - timedelta(days=days)
    zone = ZoneInfo(engine.timezone)
    doomed = []
    for table in engine.catalog.tables:
        for key in engine.location.storage.list(
            processed_prefix(engine.location, engine.catalog.pipeline, table.name)
        ):
            stamp = key.rsplit("/", 1)[-1][:13]  # YYYYMMDD_HHMM in the naming timezone
            try:
                written = datetime.strptime(stamp, "%Y%m%d_%H%M").replace(tzinfo=zone)
            except ValueError:
                continue  # not one of our parts: never touch it
            if written < cutoff:
                engine.location.storage.delete(key)
                doomed.append(key)
    return doomed
