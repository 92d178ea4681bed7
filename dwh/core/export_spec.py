"""The `export:` section of a catalog: which JSON documents `export_json` publishes, and where.

Validated with the rest of the catalog (dwh/core/catalog.py), so a path with an unknown
placeholder or a reserved name fails at load, naming the file and the field.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dwh.core.names import Ident

_PATH_FIELDS = {"id", "fanout", "shard"}


class ExportDocument(BaseModel):
    """One kind of exported JSON document: `sql/<p>/export/<name>.sql` + `<name>.schema.json`.

    A `path` with `{id}` makes one document per row of the SQL (a user, a country);
    `{fanout}` adds a fixed hashed sub-directory so no folder holds ~300k files, and
    `{shard}` the three-level `h0/h1/h2` folders of an integer id that OSM-Notes-Viewer
    reads (`h = format(id % 4096, '03x')`). `each_publish` renders a single document
    again on every publish, after all others (metadata.json and its export date); it
    never by itself makes a run publish.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Ident
    path: str = Field(pattern=r"^[a-z0-9_{}][a-z0-9_{}/.-]*\.json$", max_length=200)
    each_publish: bool = False

    @model_validator(mode="after")
    def _known_placeholders(self) -> ExportDocument:
        used = set(re.findall(r"{([^{}]*)}", self.path))
        if used - _PATH_FIELDS:
            msg = (
                f"path {self.path!r} uses {sorted(used - _PATH_FIELDS)}; "
                "only {id}, {fanout} and {shard} exist"
            )
            raise ValueError(msg)
        for folder in ("fanout", "shard"):
            if folder in used and "id" not in used:
                msg = f"path {self.path!r} has {{{folder}}} without {{id}}"
                raise ValueError(msg)
        if self.each_publish and "id" in used:
            msg = f"path {self.path!r}: each_publish is for a single document, not one per {{id}}"
            raise ValueError(msg)
        if ".." in self.path.split("/") or self.path in {"manifest.json", "SHA256SUMS"}:
            msg = f"path {self.path!r} is reserved or leaves the export"
            raise ValueError(msg)
        return self

    @property
    def per_entity(self) -> bool:
        return "{id}" in self.path


class ExportSpec(BaseModel):
    """The JSON documents `export_json` publishes for readers (a static viewer, an API)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    documents: tuple[ExportDocument, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _mapping_form(cls, data: object) -> object:
        """Accept `documents: {name: path or {path, each_publish}}`, the friendly form, as well as a list."""
        if isinstance(data, dict) and isinstance(data.get("documents"), dict):
            data = {
                **data,
                "documents": [
                    {"name": k, **v} if isinstance(v, dict) else {"name": k, "path": v}
                    for k, v in data["documents"].items()
                ],
            }
        return data

    @model_validator(mode="after")
    def _unique(self) -> ExportSpec:
        for attr in ("name", "path"):
            values = [getattr(d, attr) for d in self.documents]
            if len(values) != len(set(values)):
                msg = f"export documents repeat a {attr}: {values}"
                raise ValueError(msg)
        return self
