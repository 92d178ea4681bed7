"""Flow: daily pg_dump of a pipeline's warehouse schemas to object storage, with retention."""

from __future__ import annotations

from prefect import flow, get_run_logger

from dwh.backup import BackupResult, backup
from dwh.guard import guarded_engine


@flow(name="backup", flow_run_name="backup-{pipeline}")
def backup_pipeline(pipeline: str, keep: int = 7) -> BackupResult:
    engine = guarded_engine(pipeline)
    result = backup(engine.catalog, engine.warehouse_conninfo, engine.location, engine.sql_dir, keep=keep)
    get_run_logger().info(
        "backed up %s (%s bytes) to %s; deleted %s old backup(s)",
        ", ".join(result.schemas),
        result.size,
        result.key,
        len(result.deleted),
    )
    return result
