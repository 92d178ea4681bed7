"""Security baseline (seed §12), storage: the shipped S3 policy allows every call a run makes and
nothing outside its prefix.

docs/security.md lists every claim with its test.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import pytest
from botocore.client import BaseClient

from dwh.ingest.report import IngestFailedError
from flows.ingest import ingest
from tests.conftest import Env, rows_loaded, seed_fleet
from tests.s3_policy import render_policy

pytestmark = pytest.mark.usefixtures("prefect_harness")


# --- S3 policy -----------------------------------------------------------------------------------


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    statements = policy["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _conditions_hold(conditions: dict[str, dict[str, str | list[str]]], context: dict[str, str]) -> bool:
    for operator, tests in conditions.items():
        assert operator in {"StringLike", "StringEquals"}, f"this evaluator does not know {operator}"
        for key, patterns in tests.items():
            if key not in context:
                return False
            match = fnmatchcase if operator == "StringLike" else str.__eq__
            if not any(match(context[key], p) for p in _listed(patterns)):
                return False
    return True


def _allowed(policy: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> bool:
    """IAM evaluation for identity policies: default deny, an explicit Deny wins."""
    verdict = False
    for statement in _statements(policy):
        if not any(fnmatchcase(action.lower(), a.lower()) for a in _listed(statement["Action"])):
            continue
        if not any(fnmatchcase(resource, r) for r in _listed(statement["Resource"])):
            continue
        if not _conditions_hold(statement.get("Condition", {}), context):
            continue
        if statement["Effect"] == "Deny":
            return False
        verdict = True
    return verdict


def _permissions(operation: str, params: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:  # noqa: PLR0911
    """The IAM permissions an S3 API call needs (AWS's S3 action mapping)."""
    bucket = f"arn:aws:s3:::{params['Bucket']}"
    obj = f"{bucket}/{params.get('Key', '')}"
    if operation in {"ListObjectsV2", "ListObjects"}:
        return [("s3:ListBucket", bucket, {"s3:prefix": params.get("Prefix", "")})]
    if operation in {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}:
        return [("s3:PutObject", obj, {})]
    if operation in {"GetObject", "HeadObject"}:
        return [("s3:GetObject", obj, {})]
    if operation in {"CopyObject", "UploadPartCopy"}:
        copied = params["CopySource"]
        source = f"{copied['Bucket']}/{copied['Key']}" if isinstance(copied, dict) else copied.lstrip("/")
        return [("s3:GetObject", f"arn:aws:s3:::{source}", {}), ("s3:PutObject", obj, {})]
    if operation == "DeleteObject":
        return [("s3:DeleteObject", obj, {})]
    if operation == "AbortMultipartUpload":
        return [("s3:AbortMultipartUpload", obj, {})]
    if operation == "ListParts":
        return [("s3:ListMultipartUploadParts", obj, {})]
    pytest.fail(f"the pipeline made an S3 call the policy test does not know: {operation}")


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
def test_s3_policy_allows_every_call_a_run_makes_and_nothing_outside_its_prefix(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    recording: list[bool] = []
    original = BaseClient._make_api_call

    def recorded(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if recording and self.meta.service_model.service_name == "s3":
            calls.append((operation, dict(params)))
        return original(self, operation, params)

    env.migrate()
    counts = seed_fleet(1000)
    env.query("source", "ALTER TABLE public.trips ALTER COLUMN max_speed_kmh TYPE text")
    env.query("source", "UPDATE public.trips SET max_speed_kmh = 'fast' WHERE trip_id = 5")
    monkeypatch.setattr(BaseClient, "_make_api_call", recorded)
    recording.append(True)
    # A table that loads (parts move to processed/) and one whose load fails (parts stay).
    with pytest.raises(IngestFailedError):
        ingest("fleet", tables=["alarms", "trips"])
    env.query("source", "UPDATE public.trips SET max_speed_kmh = '1' WHERE trip_id = 5")
    assert rows_loaded(ingest("fleet", tables=["alarms"])) == {"alarms": 0}
    recording.clear()
    assert counts["alarms"] > 0
    operations = {operation for operation, _ in calls}
    assert {"ListObjectsV2", "PutObject", "HeadObject", "CopyObject", "DeleteObject"} <= operations

    bucket, _, prefix = env.storage_url.removeprefix("s3://").partition("/")
    policy = render_policy(bucket=bucket, prefix=prefix, export_bucket=bucket, export_prefix="public/json")
    needed = [p for operation, params in calls for p in _permissions(operation, params)]
    denied = [p for p in needed if not _allowed(policy, *p)]
    assert denied == [], f"the shipped policy would refuse these calls: {denied}"

    # Scoped: the same calls under another project's prefix are all refused...
    other = render_policy(
        bucket=bucket, prefix=f"{prefix}-other", export_bucket=bucket, export_prefix="public/json"
    )
    assert [p for p in needed if _allowed(other, *p)] == []
    # ...and nothing ever deletes the audit trail in processed/ or rejected/ (seed §5.5).
    for folder in ("processed", "rejected"):
        key = f"arn:aws:s3:::{bucket}/{prefix}/fleet/{folder}/alarms/part.csv"
        assert not _allowed(policy, "s3:DeleteObject", key, {})
    assert not _allowed(policy, "s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": ""})
    assert not _allowed(policy, "s3:GetObject", f"arn:aws:s3:::{bucket}/elsewhere/x.csv", {})
