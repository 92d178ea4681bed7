"""`dwh preflight`: the seed's pre-flight (§3) and pre-deploy (§9) gates before the first scheduled run.

Each gate is one question with a yes/no answer and, when no, the command or change that
fixes it, in the shape of `dwh verify`'s gates: both databases reachable (and with which
sslmode), storage writable under the pipeline's prefix, the audit trail kept (S3
versioning or Object Lock), migrations applied, roles and
grants as `dwh migrate` leaves them, watermark rows seeded, every conflict key backed by a
constraint, the flows' roles not privileged, and no drift that would lose data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from dwh.core.migrate import discover
from dwh.core.settings import RunSettings, is_local
from dwh.core.sqlfiles import engine_sql, pipeline_parts, read_sql, render
from dwh.ingest.drift import pipeline_drift
from dwh.ingest.engine import Engine
from dwh.ingest.storage import S3Storage
from dwh.operations.guard import excess_rights, source_write_rights
from dwh.operations.probes import probe_database, probe_storage
from dwh.operations.verify import Gate

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Conn = psycopg.Connection[Any]


def _reachable(gate: str, conninfo: str, fix: str) -> Gate:
    """Reachable, and over TLS whenever the host is not local (unless DWH_ALLOW_PLAINTEXT)."""
    params = conninfo_to_dict(conninfo)
    sslmode = params.get("sslmode", "prefer")
    probe = probe_database(conninfo)
    if not probe.ok:
        detail = f"{probe.where} (sslmode={sslmode}): {(probe.error or '').strip()}"
        return Gate(gate, "*", ok=False, detail=detail, fix=fix)
    detail = f"{probe.where} (sslmode={sslmode}, {'ssl in use' if probe.ssl_in_use else 'no ssl'})"
    local = is_local({k: str(v) for k, v in params.items() if v is not None})
    if probe.ssl_in_use or local or RunSettings().allow_plaintext:
        return Gate(gate, "*", ok=True, detail=detail)
    return Gate(
        gate,
        "*",
        ok=False,
        detail=f"{detail}: plaintext to a host that is not local",
        fix="sslmode=verify-full with sslrootcert in the URL (or DWH_*_SSLMODE); "
        "DWH_ALLOW_PLAINTEXT=true only on a network you trust",
    )


def _storage_writable(engine: Engine) -> Gate:
    """Write and delete a probe object under `<prefix>/<pipeline>/`, where every part goes."""
    pipeline = engine.catalog.pipeline
    probe = probe_storage(engine, "preflight")
    if not probe.ok:
        fix = (
            "create the bucket/prefix and grant put/delete on it (deployments/iam/s3-policy.json), "
            "or fix DWH_STORAGE_URL"
        )
        return Gate("storage writable", pipeline, ok=False, detail=f"{probe.key_url}: {probe.error}", fix=fix)
    return Gate(
        "storage writable", pipeline, ok=True, detail=f"wrote and deleted a probe under {probe.prefix_url}"
    )


def _audit_trail_kept(engine: Engine) -> Gate:
    """On S3, bucket versioning or Object Lock: the only thing that keeps processed/ as written.

    The policy can forbid deleting the audit trail but not overwriting it (a PutObject to
    an existing key replaces it); with versioning the first version stays retrievable.
    """
    pipeline = engine.catalog.pipeline
    storage = engine.location.storage
    if not isinstance(storage, S3Storage):
        return Gate(
            "audit trail kept", pipeline, ok=True, detail="local files: protect the folder by permissions"
        )
    bucket = storage.bucket
    fix = (
        f"aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled "
        "(or Object Lock), and allow s3:GetBucketVersioning (deployments/iam/s3-policy.json)"
    )
    try:
        if storage.client.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled":
            return Gate("audit trail kept", pipeline, ok=True, detail=f"bucket {bucket}: versioning enabled")
        lock = _object_lock(storage.client, bucket)
    except Exception as exc:  # noqa: BLE001  (any failure is the answer)
        return Gate("audit trail kept", pipeline, ok=False, detail=f"bucket {bucket}: {exc}", fix=fix)
    if lock:
        return Gate("audit trail kept", pipeline, ok=True, detail=f"bucket {bucket}: Object Lock enabled")
    detail = (
        f"bucket {bucket} has neither versioning nor Object Lock: the flows' keys could overwrite processed/"
    )
    return Gate("audit trail kept", pipeline, ok=False, detail=detail, fix=fix)


def _object_lock(client: S3Client, bucket: str) -> bool:
    try:
        config = client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    except client.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] == "ObjectLockConfigurationNotFoundError":
            return False
        raise
    return bool(config.get("ObjectLockEnabled") == "Enabled")


def _migrations(engine: Engine, conn: Conn) -> Gate:
    catalog = engine.catalog
    files = discover(catalog, engine.sql_dir)
    query = render(engine.sql_dir / "introspect" / "applied_versions.sql", **pipeline_parts(catalog))
    applied = {str(r[0]) for r in conn.execute(query)}
    missing = [m.path.name for m in files if m.version not in applied]
    return Gate(
        "migrations applied",
        catalog.pipeline,
        ok=not missing,
        detail=f"not applied: {', '.join(missing)}" if missing else f"{len(files)} applied",
        fix=f"dwh migrate {catalog.pipeline}",
    )


def _grants(engine: Engine, conn: Conn) -> Gate:
    catalog = engine.catalog
    params = {
        "roles": [catalog.owner_role, catalog.ro_role],
        "owner": catalog.owner_role,
        "ro": catalog.ro_role,
        "schemas": [catalog.bronze_schema, catalog.control_schema],
        "bronze": catalog.bronze_schema,
        "tables": [t.name for t in catalog.tables],
    }
    rows = conn.execute(read_sql(engine.sql_dir / "engine" / "preflight_grants.sql"), params).fetchall()
    problems = [str(r[0]) for r in rows]
    return Gate(
        "roles and grants",
        catalog.pipeline,
        ok=not problems,
        detail="; ".join(problems) or f"{catalog.owner_role} owns and writes, {catalog.ro_role} reads",
        fix=f"dwh migrate {catalog.pipeline} (re-creates roles and grants; run it with the admin URL)",
    )


def _watermarks(engine: Engine, conn: Conn) -> Gate:
    catalog = engine.catalog
    query = engine_sql(engine.sql_dir, "preflight_watermarks", catalog)
    missing = [str(r[0]) for r in conn.execute(query, {"tables": [t.name for t in catalog.tables]})]
    return Gate(
        "watermarks seeded",
        catalog.pipeline,
        ok=not missing,
        detail=f"no watermark row for {', '.join(missing)}" if missing else f"{len(catalog.tables)} rows",
        fix=f"dwh migrate {catalog.pipeline} (R03_seed_watermarks.sql seeds them)",
    )


def _conflict_keys(engine: Engine, conn: Conn) -> list[Gate]:
    catalog = engine.catalog
    expected = [{"tbl": t.name, "cols": list(t.key)} for t in catalog.tables if t.mode.incremental]
    params = {"expected_keys": Jsonb(expected), "bronze": catalog.bronze_schema}
    rows = conn.execute(read_sql(engine.sql_dir / "engine" / "preflight_keys.sql"), params).fetchall()
    unbacked = {str(t): str(cols) for t, cols in rows}
    return [
        Gate(
            "conflict key backed by a constraint",
            str(e["tbl"]),
            ok=e["tbl"] not in unbacked,
            detail=(
                f"no PRIMARY KEY/UNIQUE on ({unbacked[str(e['tbl'])]}) in {catalog.bronze_schema}"
                if e["tbl"] in unbacked
                else f"({', '.join(e['cols'])}) is unique"
            ),
            fix=f"add PRIMARY KEY ({', '.join(e['cols'])}) in a new bronze migration (seed §5.3)",
        )
        for e in expected
    ]


def _least_privilege(engine: Engine, warehouse: Conn) -> Gate:
    catalog = engine.catalog
    problems = [f"warehouse: {p}" for p in excess_rights(warehouse, catalog, engine.sql_dir)]
    with psycopg.connect(engine.source_conninfo, autocommit=True) as source:
        if source.info.parameter_status("is_superuser") == "on":
            problems.append("source: it is a superuser")
        elif not RunSettings().allow_writable_source:
            writable = source_write_rights(source, catalog, engine.sql_dir)
            problems += [f"source may write {w}" for w in writable]
    return Gate(
        "flows' roles not privileged",
        catalog.pipeline,
        ok=not problems,
        detail="; ".join(problems[:5]) or f"warehouse {catalog.owner_role}, source role read-only use",
        fix=(
            f"connect the flows as {catalog.owner_role} (DWH_WAREHOUSE_URL without a user) and the source "
            "as a role that only reads (seed §12)"
        ),
    )


def _drift(engine: Engine, warehouse: Conn) -> Gate:
    catalog = engine.catalog
    with psycopg.connect(engine.source_conninfo, autocommit=True) as source:
        lossy = [f for f in pipeline_drift(catalog, source, warehouse, engine.sql_dir) if f.loses_data]
    return Gate(
        "no lossy drift",
        catalog.pipeline,
        ok=not lossy,
        detail="; ".join(f"{f.table}.{f.column}: {f.change}" for f in lossy)
        or "source, catalog, bronze agree",
        fix=f"dwh drift {catalog.pipeline} shows each difference and its fix",
    )


def _guarded(name: str, table: str, check: Callable[[], list[Gate]]) -> list[Gate]:
    """A gate whose query fails (a schema missing, say) fails itself, not the whole preflight."""
    try:
        return check()
    except psycopg.Error as exc:
        detail = (exc.diag.message_primary or str(exc)).strip()
        return [Gate(name, table, ok=False, detail=detail, fix="dwh migrate, then preflight again")]


def preflight(engine: Engine) -> list[Gate]:
    """Every pre-deploy gate in a stable order; never raises for a failed gate."""
    catalog = engine.catalog
    p = catalog.pipeline
    gates = [
        _reachable("source reachable", engine.source_conninfo, "check DWH_SOURCE_URL, network and sslmode"),
        _reachable(
            "warehouse reachable",
            engine.warehouse_conninfo,
            f"check DWH_WAREHOUSE_URL and sslmode; `dwh migrate {p}` creates {catalog.owner_role}",
        ),
        _storage_writable(engine),
    ]
    if gates[2].ok:  # a bucket that cannot be written has nothing to keep yet
        gates.append(_audit_trail_kept(engine))
    if not gates[1].ok:
        return gates
    with psycopg.connect(engine.warehouse_conninfo, autocommit=True) as conn:
        gates += _guarded("migrations applied", p, lambda: [_migrations(engine, conn)])
        gates += _guarded("roles and grants", p, lambda: [_grants(engine, conn)])
        gates += _guarded("watermarks seeded", p, lambda: [_watermarks(engine, conn)])
        gates += _guarded("conflict key backed by a constraint", p, lambda: _conflict_keys(engine, conn))
        gates += _guarded("flows' roles not privileged", p, lambda: [_least_privilege(engine, conn)])
        if gates[0].ok:
            gates += _guarded("no lossy drift", p, lambda: [_drift(engine, conn)])
    return gates
