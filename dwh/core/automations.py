"""Automations as code: `deployments/automations.yaml` plus the catalogs, applied by name.

The file holds Prefect automations in Prefect's own shape; this module expands the
per-table entries over every catalog (freshness windows derive from each table's
cadence), points notification actions at the configured block, and makes the server
match: create or update each by name, remove the ones it created that are no longer
declared. Running it twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

import yaml
from pydantic import BaseModel, ValidationError

from dwh.core.catalog import Catalog, load_catalog
from dwh.core.schedule import longest_wait
from dwh.core.settings import PROJECT_DIR

if TYPE_CHECKING:
    from prefect.events.schemas.automations import AutomationCore

AUTOMATIONS_FILE = PROJECT_DIR / "deployments" / "automations.yaml"
# Marks automations this module owns, so `apply` may remove them once undeclared.
MANAGED_TAG = "dwh-managed"
# Prefect refuses proactive windows shorter than this.
MIN_PROACTIVE_WINDOW = timedelta(seconds=10)


class AutomationError(ValueError):
    """The automations file is invalid; the message names the file, automation and key."""


@dataclass(frozen=True)
class TableWindow:
    """How long a table may go without a load before it counts as stale."""

    pipeline: str
    table: str
    cadence: timedelta
    within: timedelta


@dataclass(frozen=True)
class Applied:
    name: str
    action: str  # "created", "updated" or "removed"


def load_catalogs(pipelines_dir: Path) -> list[Catalog]:
    """Every catalog in the directory, validated (a broken one fails with its own message)."""
    return [load_catalog(path.stem, pipelines_dir) for path in sorted(pipelines_dir.glob("*.yaml"))]


def freshness_windows(catalogs: list[Catalog], factor: float) -> list[TableWindow]:
    """How long each table may go without a `dwh.table.loaded` event.

    With a `schedule:` the rule is dwh/core/schedule.py's (due by the next scheduled run +
    grace); a proactive automation has one fixed window, so it gets the longest wait
    that rule allows (the longest gap between runs + grace) and is the backstop for
    "nothing runs at all". The hourly health flow applies the exact rule and emits
    `dwh.table.stale` (automation "overdue by its schedule"). Without a schedule:
    factor x cadence, the seed's steady-state gate (lag < 2 x cadence).
    """
    windows = []
    now = datetime.now(UTC)
    for catalog in catalogs:
        for table in catalog.tables:
            if catalog.schedule is not None and table.cadence_minutes is None:
                within = longest_wait(catalog, table, now)
                gap = within - timedelta(minutes=catalog.schedule.grace_minutes)
                windows.append(TableWindow(catalog.pipeline, table.name, gap, within))
                continue
            cadence = timedelta(minutes=catalog.cadence_for(table))
            within = max(timedelta(seconds=round(cadence.total_seconds() * factor)), MIN_PROACTIVE_WINDOW)
            windows.append(TableWindow(catalog.pipeline, table.name, cadence, within))
    return windows


def describe_window(within: timedelta) -> str:
    seconds = int(within.total_seconds())
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _substitute(value: object, mapping: dict[str, str], where: str) -> object:
    if isinstance(value, str):
        try:
            return Template(value).substitute(mapping)
        except (KeyError, ValueError) as exc:
            known = ", ".join(f"${k}" for k in mapping)
            msg = f"{where}: bad placeholder {exc} in {value!r} (known: {known})"
            raise AutomationError(msg) from None
    if isinstance(value, list):
        return [_substitute(v, mapping, where) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, mapping, where) for k, v in value.items()}
    return value


def _unknown_keys(raw: dict[str, Any], model: BaseModel, where: str) -> list[str]:
    """Keys of `raw` the model has no field for (Prefect's models ignore them silently)."""
    fields = type(model).model_fields
    return [f"{where}.{key}" for key in raw if key not in fields]


def _validate(raw: dict[str, Any], block_id: UUID, where: str) -> AutomationCore:
    from prefect.events.schemas.automations import AutomationCore  # noqa: PLC0415

    actions = [
        {"block_document_id": str(block_id), **action}
        if isinstance(action, dict) and action.get("type") == "send-notification"
        else action
        for action in raw.get("actions") or []
    ]
    data = {**raw, "actions": actions, "tags": sorted({*raw.get("tags", []), MANAGED_TAG})}
    try:
        automation = AutomationCore.model_validate(data)
    except ValidationError as exc:
        msg = f"{where}: not a valid Prefect automation:\n{exc}"
        raise AutomationError(msg) from exc
    unknown = _unknown_keys(data, automation, where)
    if isinstance(raw.get("trigger"), dict):
        unknown += _unknown_keys(raw["trigger"], automation.trigger, f"{where}.trigger")
    for index, (action, model) in enumerate(zip(actions, automation.actions, strict=True)):
        if isinstance(action, dict):
            unknown += _unknown_keys(action, model, f"{where}.actions[{index}]")
    if unknown:
        msg = f"unknown key(s) Prefect would silently ignore: {', '.join(unknown)}"
        raise AutomationError(msg)
    return automation


def build_automations(
    catalogs: list[Catalog],
    *,
    block_id: UUID,
    factor: float = 2.0,
    path: Path = AUTOMATIONS_FILE,
) -> list[AutomationCore]:
    """Every automation the file declares, per-table entries expanded over the catalogs."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        msg = f"{path}: cannot read automations: {exc}"
        raise AutomationError(msg) from exc
    entries = document.get("automations") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        msg = f"{path}: expected a top-level `automations:` list"
        raise AutomationError(msg)

    automations: list[AutomationCore] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            msg = f"{path}: automations[{index}] is not a mapping"
            raise AutomationError(msg)
        where = f"{path.name}: automation {entry.get('name', index)!r}"
        raw = {k: v for k, v in entry.items() if k != "per_table"}
        if not entry.get("per_table"):
            automations.append(_validate(raw, block_id, where))
            continue
        for window in freshness_windows(catalogs, factor):
            mapping = {
                "pipeline": window.pipeline,
                "table": window.table,
                "within": describe_window(window.within),
                "cadence": describe_window(window.cadence),
                "factor": f"{factor:g}",
            }
            expanded = cast("dict[str, Any]", _substitute(raw, mapping, where))
            expanded["trigger"] = {**expanded.get("trigger", {}), "within": window.within.total_seconds()}
            automations.append(_validate(expanded, block_id, where))
    names = [a.name for a in automations]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        msg = f"{path}: automation names must be unique, repeated: {duplicates}"
        raise AutomationError(msg)
    return automations


def apply_automations(automations: list[AutomationCore]) -> list[Applied]:
    """Create or update each automation by name; remove managed ones no longer declared.

    Several automations with one name (made by hand, or by an older tool) would each
    notify: the first is updated and the others removed.
    """
    from prefect.client.orchestration import get_client  # noqa: PLC0415

    applied: list[Applied] = []
    wanted = {a.name for a in automations}
    with get_client(sync_client=True) as client:
        for automation in automations:
            existing = client.read_automations_by_name(automation.name)
            if not existing:
                client.create_automation(automation)
                applied.append(Applied(automation.name, "created"))
                continue
            client.update_automation(existing[0].id, automation)
            applied.append(Applied(automation.name, "updated"))
            for duplicate in existing[1:]:
                client.delete_automation(duplicate.id)
                applied.append(Applied(duplicate.name, "removed (duplicate name)"))
        for stale in client.read_automations():
            if MANAGED_TAG in stale.tags and stale.name not in wanted:
                client.delete_automation(stale.id)
                applied.append(Applied(stale.name, "removed (no longer declared)"))
    return applied
