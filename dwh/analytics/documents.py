"""The documents of a JSON export: where each goes, its SQL and its JSON Schema, validation.

`dwh.analytics.export` runs an export over these; the viewer's folder arithmetic
(`viewer_shard`) and the path rules (`document_path`) live here so tests and readers of the
layout can use them without a run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import jsonschema
import jsonschema_rs
from jsonschema.exceptions import SchemaError
from psycopg import sql

from dwh.analytics.publish import is_plain_name
from dwh.analytics.steps import dwh_parts
from dwh.core.catalog import Catalog, CatalogError
from dwh.core.export_spec import ExportDocument
from dwh.core.sqlfiles import read_sql, render
from dwh.core.transient import StepError

EXPORT_DIR = "export"


class ExportError(StepError):
    """The export failed and published nothing; the message names the file and the field."""


@dataclass(frozen=True)
class Renderer:
    """The export files of a pipeline: one SQL query and one JSON Schema per document."""

    catalog: Catalog
    sql_dir: Path

    @property
    def documents(self) -> tuple[ExportDocument, ...]:
        if self.catalog.export is None:
            msg = f"pipeline {self.catalog.pipeline!r} declares no `export:` documents in its catalog"
            raise CatalogError(msg)
        return self.catalog.export.documents

    def query_path(self, document: ExportDocument) -> Path:
        return self.sql_dir / self.catalog.pipeline / EXPORT_DIR / f"{document.name}.sql"

    def schema_path(self, document: ExportDocument) -> Path:
        return self.sql_dir / self.catalog.pipeline / EXPORT_DIR / f"{document.name}.schema.json"

    def query(self, document: ExportDocument) -> sql.Composed:
        return render(self.query_path(document), **dwh_parts(self.catalog))

    @cached_property
    def validators(self) -> dict[str, jsonschema.protocols.Validator]:
        """A checked validator per document; a missing or broken schema is an error, never a skip."""
        found = {d.name: _validator(self.schema_path(d)) for d in self.documents}
        found[MANIFEST_SCHEMA] = _validator(self.sql_dir / "common" / EXPORT_DIR / "manifest.schema.json")
        return found

    @cached_property
    def fingerprint(self) -> str:
        """Changes when a query, a schema or a path does: the next export is then full."""
        digest = hashlib.sha256()
        for document in self.documents:
            for part in (document.name, document.path, read_sql(self.query_path(document))):
                digest.update(part.encode() + b"\0")
            digest.update(self.schema_path(document).read_bytes() + b"\0")
        return digest.hexdigest()

    @cached_property
    def fast_validators(self) -> dict[str, jsonschema_rs.Validator]:
        """The same schemas compiled by jsonschema-rs: ~8 us a document instead of ~1.2 ms."""
        return {name: jsonschema_rs.validator_for(v.schema) for name, v in self.validators.items()}

    def validate(self, name: str, path: str, instance: object) -> None:
        """Raise ExportError naming the file, the field and the rule when `instance` breaks its schema.

        Every document is checked by the compiled validator; only a failing one goes
        through `jsonschema` too, whose best_match picks the error worth reporting.
        """
        if self.fast_validators[name].is_valid(instance):
            return
        error = jsonschema.exceptions.best_match(self.validators[name].iter_errors(instance))
        if error is None:  # the two disagree: report what the compiled validator saw
            fast = next(iter(self.fast_validators[name].iter_errors(instance)))
            at = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in fast.instance_path)
            msg = f"{path}: invalid {name} document at {at}: {fast.message}"
            raise ExportError(msg)
        what = error.message if len(error.message) <= 300 else error.message[:300] + "…"  # noqa: PLR2004
        msg = (
            f"{path}: invalid {name} document at {error.json_path}: {what} "
            f"(rule {error.validator!s}: {json.dumps(error.validator_value)[:200]})"
        )
        raise ExportError(msg)


MANIFEST_SCHEMA = "__manifest__"


def _validator(path: Path) -> jsonschema.protocols.Validator:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"JSON Schema not found: {path} (every exported document is validated)"
        raise ExportError(msg) from None
    except json.JSONDecodeError as exc:
        msg = f"{path}: not valid JSON, line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise ExportError(msg) from exc
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        msg = f"{path}: not a valid JSON Schema at {exc.json_path}: {exc.message}"
        raise ExportError(msg) from exc
    return cls(schema)


def viewer_shard(entity_id: str) -> str:
    """OSM-Notes-Viewer's user folders (its `getUserSubdir`): the 3 hex digits of id mod 4096, one level each.

    12345 -> "0/3/9", 4095 -> "f/f/f", 4096 -> "0/0/0". Only ids >= 0 have a folder
    (the viewer's `%` keeps the sign of a negative id, so no folder would match).
    """
    try:
        number = int(entity_id)
    except ValueError:
        number = -1
    if number < 0 or str(number) != entity_id:
        msg = f"{{shard}} needs an integer id >= 0 written plainly, got {entity_id!r}"
        raise ExportError(msg)
    return "/".join(f"{number % 4096:03x}")


def document_path(document: ExportDocument, entity_id: str) -> str:
    """Where an entity's document goes: `{fanout}` is 2 hex digits of md5(id), 256 folders;
    `{shard}` the viewer's 4,096 folders of an integer id.

    The id becomes one file name: the catalog does not promise integers, and an id
    `../../x` would otherwise write outside the version (a key outside the prefix on S3).
    """
    if not is_plain_name(entity_id):
        msg = (
            f"{document.name}: entity id {entity_id!r} cannot be a file name in {document.path} "
            "(no '/', '\\', '.', '..', NUL or line break)"
        )
        raise ExportError(msg)
    fanout = hashlib.md5(entity_id.encode(), usedforsecurity=False).hexdigest()[:2]
    shard = viewer_shard(entity_id) if "{shard}" in document.path else ""
    return document.path.format(id=entity_id, fanout=fanout, shard=shard)
