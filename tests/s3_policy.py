"""The shipped S3 policy (deployments/iam/s3-policy.json) with its placeholders filled in.

Placeholders are whole words (`BUCKET`, `PREFIX`, `EXPORT_*`, `BACKUP_*`), so
filling one never rewrites part of another, as a plain `str.replace("PREFIX", …)` would.
"""

from __future__ import annotations

import json
import re
from typing import Any

from dwh.core.settings import PROJECT_DIR

POLICY = PROJECT_DIR / "deployments" / "iam" / "s3-policy.json"
PLACEHOLDERS = ("BUCKET", "PREFIX", "EXPORT_BUCKET", "EXPORT_PREFIX", "BACKUP_BUCKET", "BACKUP_PREFIX")


def render_policy(
    *, bucket: str, prefix: str, export_bucket: str, export_prefix: str, backup_prefix: str | None = None
) -> dict[str, Any]:
    """Backups default to where DWH_BACKUP_URL does: `<prefix>-backups` in the same bucket."""
    values = {
        "BUCKET": bucket,
        "PREFIX": prefix.strip("/"),
        "EXPORT_BUCKET": export_bucket,
        "EXPORT_PREFIX": export_prefix.strip("/"),
        "BACKUP_BUCKET": bucket,
        "BACKUP_PREFIX": (backup_prefix or f"{prefix.strip('/')}-backups").strip("/"),
    }
    template = POLICY.read_text(encoding="utf-8")
    for name in PLACEHOLDERS:
        assert re.search(rf"\b{name}\b", template), f"{POLICY.name} lost its {name} placeholder"
    pattern = re.compile(r"\b(" + "|".join(PLACEHOLDERS) + r")\b")
    return dict(json.loads(pattern.sub(lambda m: values[m.group(1)], template)))
