"""`dwh preflight`: the §3/§9 pre-deploy gates pass on the dev stack and name what is missing."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from dwh.cli import app
from dwh.core.catalog import load_catalog
from dwh.core.migrate import migrate
from dwh.core.settings import WarehouseSettings
from dwh.ingest.engine import Engine
from dwh.operations.preflight import preflight
from dwh.operations.verify import Gate
from flows.ingest import ingest
from tests.conftest import PIPELINES_DIR, SQL_DIR, Env, seed_fleet

runner = CliRunner()


def _failed(gates: list[Gate]) -> dict[tuple[str, str], str]:
    return {(g.gate, g.table): g.detail for g in gates if not g.ok}


def _cli(pipeline: str) -> tuple[int, str]:
    result = runner.invoke(app, ["preflight", pipeline], env={"COLUMNS": "300"})
    return result.exit_code, " ".join(re.sub("[\u2500-\u257f]", " ", result.output).split())


def test_preflight_passes_on_the_dev_stack(env: Env) -> None:
    env.migrate()
    seed_fleet(300)

    gates = preflight(Engine.from_settings("fleet"))

    assert _failed(gates) == {}
    assert {g.gate for g in gates} == {
        "source reachable",
        "warehouse reachable",
        "storage writable",
        "audit trail kept",
        "migrations applied",
        "roles and grants",
        "watermarks seeded",
        "conflict key backed by a constraint",
        "flows' roles not privileged",
        "no lossy drift",
    }
    assert any("sslmode=" in g.detail for g in gates if g.gate == "source reachable")
    assert env.location_keys("fleet", "preflight") == []  # the probe is deleted
    code, output = _cli("fleet")
    assert code == 0, output
    assert "fleet: all 12 pre-deploy gates passed" in output


def test_missing_role_fails_the_roles_gate_by_name(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pipeline name of its own: roles are cluster-wide and other tests use fleet's.
    name = f"pf{uuid.uuid4().hex[:6]}"
    pipelines, sql_dir = tmp_path / "pipelines", tmp_path / "sql"
    pipelines.mkdir()
    (pipelines / f"{name}.yaml").write_text(
        (PIPELINES_DIR / "fleet.yaml").read_text().replace("pipeline: fleet", f"pipeline: {name}")
    )
    shutil.copytree(SQL_DIR, sql_dir)
    shutil.copytree(sql_dir / "fleet", sql_dir / name)
    monkeypatch.setenv("DWH_PIPELINES_DIR", str(pipelines))
    monkeypatch.setenv("DWH_SQL_DIR", str(sql_dir))
    migrate(load_catalog(name, pipelines), WarehouseSettings(), sql_dir)  # type: ignore[call-arg]
    seed_fleet(300)
    env.query("wh", f"DROP OWNED BY {name}_ro; DROP ROLE {name}_ro")

    failed = _failed(preflight(Engine.from_settings(name)))

    assert list(failed) == [("roles and grants", name)]
    assert f"role {name}_ro does not exist" in failed["roles and grants", name]
    code, output = _cli(name)
    assert code == 1
    assert "1 of 12 gates failed: roles and grants" in output
    assert f"dwh migrate {name}" in output


def test_conflict_key_without_a_constraint_fails_that_tables_gate(env: Env) -> None:
    env.migrate()
    seed_fleet(300)
    env.query("wh", "ALTER TABLE fleet_bronze.trips DROP CONSTRAINT trips_pkey")

    failed = _failed(preflight(Engine.from_settings("fleet")))

    assert failed == {
        ("conflict key backed by a constraint", "trips"): "no PRIMARY KEY/UNIQUE on (trip_id) in fleet_bronze"
    }
    code, output = _cli("fleet")
    assert code == 1
    assert "conflict key backed by a constraint" in output


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
def test_missing_storage_prefix_fails_the_storage_gate(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.migrate()
    seed_fleet(300)
    monkeypatch.setenv("DWH_STORAGE_URL", f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/dwh")

    failed = _failed(preflight(Engine.from_settings("fleet")))

    assert list(failed) == [("storage writable", "fleet")]
    assert "NoSuchBucket" in failed["storage writable", "fleet"]
    code, output = _cli("fleet")
    assert code == 1
    assert "gates failed: storage writable" in output


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
def test_a_bucket_that_lets_processed_parts_be_overwritten_fails_the_audit_gate(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The policy can forbid deleting processed/, not overwriting it: versioning must keep the first."""
    env.migrate()
    seed_fleet(300)
    bucket = f"unversioned-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    monkeypatch.setenv("DWH_STORAGE_URL", f"s3://{bucket}/dwh")

    failed = _failed(preflight(Engine.from_settings("fleet")))
    assert list(failed) == [("audit trail kept", "fleet")]
    assert f"bucket {bucket} has neither versioning nor Object Lock" in failed["audit trail kept", "fleet"]
    code, output = _cli("fleet")
    assert (code, "gates failed: audit trail kept" in output) == (1, True), output

    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert _failed(preflight(Engine.from_settings("fleet"))) == {}
    ingest("fleet", tables=["devices"])
    (part,) = [
        o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"] if "/processed/" in o["Key"]
    ]
    original = client.get_object(Bucket=bucket, Key=part)["Body"].read()
    client.put_object(Bucket=bucket, Key=part, Body=b"device_id\n666\n")  # what the keys allow
    versions = client.list_object_versions(Bucket=bucket, Prefix=part)["Versions"]
    (oldest,) = [v for v in versions if not v["IsLatest"]]
    assert (
        client.get_object(Bucket=bucket, Key=part, VersionId=oldest["VersionId"])["Body"].read() == original
    )


def test_preflight_fails_a_source_role_that_may_write_the_tables_it_extracts(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.migrate()
    seed_fleet(300)
    monkeypatch.setenv("DWH_SOURCE_URL", os.environ["DWH_SEED_URL"])

    failed = _failed(preflight(Engine.from_settings("fleet")))

    assert list(failed) == [("flows' roles not privileged", "fleet")]
    assert (
        "source may write public.devices: INSERT, UPDATE, DELETE, TRUNCATE"
        in failed["flows' roles not privileged", "fleet"]
    )


def test_preflight_fails_a_plaintext_connection_to_a_host_that_is_not_local(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`host` names a remote server (TLS would verify it); `hostaddr` keeps the bytes on loopback."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: PLC0415

    env.migrate()
    seed_fleet(300)
    source = conninfo_to_dict(Engine.from_settings("fleet").source_conninfo)
    remote = make_conninfo(
        "", **{**source, "host": "db.example.com", "hostaddr": "127.0.0.1", "sslmode": "prefer"}
    )
    monkeypatch.setenv("DWH_SOURCE_URL", remote)

    gate = next(g for g in preflight(Engine.from_settings("fleet")) if g.gate == "source reachable")

    assert not gate.ok
    assert "no ssl" in gate.detail
    assert "plaintext to a host that is not local" in gate.detail
    assert "sslmode=verify-full" in gate.fix
    monkeypatch.setenv("DWH_ALLOW_PLAINTEXT", "true")
    allowed = next(g for g in preflight(Engine.from_settings("fleet")) if g.gate == "source reachable")
    assert allowed.ok, allowed.detail
