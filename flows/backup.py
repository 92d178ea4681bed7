"""Flow: daily pg_dump of a pipeline's warehouse schemas to object storage, with retention."""

from __future__ import annotations

from prefect import flow, get_run_logger

from dwh.operations.backup import BackupResult, backup, backup_location
from dwh.operations.guard import guarded_engine


@flow(name="backup", flow_run_name="backup-{pipeline}")
def backup_pipeline(pipeline: str, keep: int = 7) -> BackupResult:
    engine = guarded_engine(pipeline)
    result = backup(engine.catalog, engine.warehouse_conninfo, backup_location(), engine.sql_dir, keep=keep)
    # The digest is what an operator passes to `dwh restore --sha256` into a fresh database.
    get_run_logger().info(
        "backed up %s (%s bytes) to %s, sha256 %s; deleted %s old backup(s)",
        ", ".join(result.schemas),
        result.size,
        result.key,
        result.sha256,
        len(result.deleted),
    )
    return result
