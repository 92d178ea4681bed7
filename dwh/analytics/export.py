"""JSON export of a pipeline's datamarts: render in the database, validate, publish atomically.

One run, in one REPEATABLE READ transaction (every document sees the same datamarts):

1. hash every entity's datamart row (`sql/<p>/export/<name>.sql` gives id, row_hash
   and doc; only id and row_hash are read here) and pick the new and changed ones;
2. stream just those documents from the database (built there as JSON), validate each
   against `<name>.schema.json`, and write it into a new version: per-entity documents
   first, then the single ones (indexes, global), then the each_publish ones (metadata);
3. keep every unchanged document (a hard link into the new version on a directory;
   nothing at all on S3, where documents stay in place) and drop the ones that left;
4. write SHA256SUMS and the manifest, publish (`dwh.analytics.publish`), then commit the document
   list, so an entity counts as exported only once readers can see it.

Any invalid document aborts before anything reaches readers: the old version stays
published and the message names the file, the field and the rule. A run that finds
nothing changed publishes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from dwh.analytics.documents import MANIFEST_SCHEMA, ExportError, Renderer, document_path
from dwh.analytics.publish import PublishError, Target, VersionWriter
from dwh.analytics.steps import Logger, record_failure
from dwh.core.catalog import Catalog
from dwh.core.export_spec import ExportDocument
from dwh.core.sqlfiles import engine_sql
from dwh.core.transient import is_transient

log = logging.getLogger(__name__)

SUMS = "SHA256SUMS"
_BATCH = 5_000


@dataclass(frozen=True)
class ExportResult:
    pipeline: str
    url: str
    version: str | None  # None: nothing changed, nothing published
    previous: str | None
    full: bool
    rendered: dict[str, int]
    removed: int
    carried: int
    documents: int
    deleted_versions: tuple[str, ...]
    seconds: float

    def describe(self) -> str:
        if self.version is None:
            return f"{self.pipeline} export: nothing changed since {self.previous} ({self.seconds:.1f} s)"
        mode = "full" if self.full else "incremental"
        rendered = ", ".join(f"{k} {v:,}" for k, v in self.rendered.items())
        return (
            f"{self.pipeline} export {self.version} ({mode}) published to {self.url}: "
            f"{sum(self.rendered.values()):,} rendered ({rendered}), {self.carried:,} unchanged, "
            f"{self.removed:,} removed, {self.documents:,} documents, in {self.seconds:.1f} s"
        )


def new_version() -> str:
    """Sortable by time (to the microsecond), unique even for runs started at the same instant."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"


@dataclass
class _Run:
    """The state one export run accumulates while it streams documents."""

    catalog: Catalog
    conn: psycopg.Connection[Any]
    renderer: Renderer
    target: Target
    writer: VersionWriter
    version: str
    previous: str | None
    full: bool
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    flow_run_id: UUID | None = None
    rendered: dict[str, int] = field(default_factory=dict)
    removed: int = 0
    carried: int = 0
    _buffer: list[tuple[str, str, str, str, str]] = field(default_factory=list)

    def sql(self, name: str, **parts: sql.Composable) -> sql.Composed:
        return engine_sql(self.renderer.sql_dir, name, self.catalog, **parts)

    def emit(self, document: ExportDocument, entity_id: str, row_hash: str, text: str) -> None:
        path = document_path(document, entity_id) if document.per_entity else document.path
        try:
            instance = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"{path}: {document.name}.sql returned invalid JSON: {exc}"
            raise ExportError(msg) from exc
        self.renderer.validate(document.name, path, instance)
        data = text.encode()
        self.writer.write(path, data)
        self._buffer.append((document.name, entity_id, row_hash, hashlib.sha256(data).hexdigest(), path))
        self.rendered[document.name] = self.rendered.get(document.name, 0) + 1
        if len(self._buffer) >= _BATCH:
            self.flush_rendered()

    def flush_rendered(self) -> None:
        """Record rendered documents in the run's scratch table, a batch at a time (flat memory)."""
        if not self._buffer:
            return
        with self.conn.cursor().copy(
            "COPY export_rendered (document, id, row_hash, sha256, path) FROM STDIN"
        ) as copy:
            for row in self._buffer:
                copy.write_row(row)
        self._buffer.clear()

    def render_entities(self, document: ExportDocument) -> None:
        parts = {"query": self.renderer.query(document), "document": sql.Literal(document.name)}
        self.conn.execute(self.sql("export_hash_entities", full=sql.Literal(self.full), **parts))
        self.rendered[document.name] = 0
        with self.conn.cursor(name=f"export_{document.name}") as cursor:
            cursor.itersize = 2_000
            cursor.execute(self.sql("export_render_entities", **parts))
            for entity_id, row_hash, text in cursor:
                self.emit(document, entity_id, row_hash, text)

    def render_single(self, document: ExportDocument, *, always: bool = False) -> None:
        row = self.conn.execute(
            self.sql("export_render_single", query=self.renderer.query(document))
        ).fetchone()
        if row is None:
            msg = f"{self.renderer.query_path(document)} returned no row: are the datamarts built?"
            raise ExportError(msg)
        row_hash, text = row
        if not always:
            self.conn.execute(self.sql("export_hash_single"), (document.name, row_hash))
        previous = self.conn.execute(self.sql("export_previous_hash"), (document.name, "")).fetchone()
        self.rendered[document.name] = 0
        if always or self.full or previous is None or previous[0] != row_hash:
            self.emit(document, "", row_hash, text)

    def version_row(
        self, status: str, *, error: str | None = None, documents: int | None = None
    ) -> tuple[Any, ...]:
        """The parameters of this run's export_versions row (sql/engine/export_record_version.sql)."""
        removed = self.removed if status == "published" else None
        return (
            self.version, status, self.full, self.renderer.fingerprint, self.flow_run_id,
            self.started_at, documents, sum(self.rendered.values()), removed, self.target.url,
            error and error[:4000],
        )  # fmt: skip


def export_json(
    catalog: Catalog,
    conninfo: str,
    sql_dir: Path,
    target: Target,
    *,
    full: bool = False,
    keep_versions: int = 5,
    flow_run_id: UUID | None = None,
    logger: Logger = log,
) -> ExportResult:
    """Publish the documents whose datamart rows changed (all with `full`) as a new version.

    Raises:
        ExportError: a document failed validation or a query failed; nothing was
            published and the run is recorded as failed in `<pipeline>_control.export_versions`.
        PublishError: the target refused a write; the previous version stays published.
    """
    started = time.monotonic()
    renderer = Renderer(catalog, sql_dir)
    renderer.validators  # noqa: B018  (fail before any work when a schema is missing)
    with psycopg.connect(conninfo) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.execute("SET TIME ZONE 'UTC'")  # timestamps in documents and row hashes
        conn.commit()
        last = conn.execute(engine_sql(sql_dir, "export_last_version", catalog)).fetchone()
        conn.rollback()
        previous, fingerprint = (str(last[0]), str(last[1])) if last else (None, None)
        reasons = _full_reasons(full, previous, target.current(), fingerprint, renderer.fingerprint)
        if reasons and previous is not None:
            logger.info("full export of %s: %s", catalog.pipeline, "; ".join(reasons))
        version = new_version()
        run = _Run(
            catalog, conn, renderer, target, target.writer(version), version, previous, bool(reasons),
            flow_run_id=flow_run_id,
        )  # fmt: skip
        try:
            documents = _build_and_publish(run)
        except (ExportError, PublishError, psycopg.Error) as exc:
            if not conn.broken:
                conn.rollback()
            _discard(run, logger)
            record_failure(
                conninfo,
                run.sql("export_record_version"),
                run.version_row("failed", error=str(exc)),
                what=f"export of {catalog.pipeline}",
            )
            if isinstance(exc, psycopg.Error):
                msg = f"{catalog.pipeline} export failed in the database: {exc}"
                raise ExportError(msg, transient=is_transient(exc)) from exc
            raise
        if documents is None:
            conn.rollback()
            _discard(run, logger)
        else:
            conn.execute(run.sql("export_record_version"), run.version_row("published", documents=documents))
            conn.commit()
        deleted = _retain(run, keep_versions, logger) if documents is not None else ()
    result = ExportResult(
        pipeline=catalog.pipeline,
        url=target.url,
        version=version if documents is not None else None,
        previous=previous,
        full=run.full,
        rendered=run.rendered,
        removed=run.removed,
        carried=run.carried,
        documents=documents or 0,
        deleted_versions=deleted,
        seconds=time.monotonic() - started,
    )
    logger.info("%s", result.describe())
    return result


def _full_reasons(
    asked: bool, previous: str | None, current: str | None, fingerprint: str | None, now: str
) -> list[str]:
    reasons = ["asked for"] if asked else []
    if previous is None:
        reasons.append("first export")
    elif current != previous:
        reasons.append(f"the target points at {current}, the warehouse last published {previous}")
    elif fingerprint != now:
        reasons.append("an export query, schema or path changed since the last version")
    return reasons


def _build_and_publish(run: _Run) -> int | None:
    """Render, carry, checksum and switch; the number of documents published, None if nothing changed."""
    conn = run.conn
    conn.execute(run.sql("export_begin"))
    documents = run.renderer.documents
    # Per-entity documents first, then the single ones that list them (indexes), then
    # the each_publish ones (metadata.json): a target that writes in place (S3) writes
    # them in that order, so an index never names a document that is not there yet.
    for document in (d for d in documents if d.per_entity):
        run.render_entities(document)
    run.writer.sequence_point()
    for document in (d for d in documents if not d.per_entity and not d.each_publish):
        run.render_single(document)
    stamps = [d for d in documents if d.each_publish]
    for document in stamps:  # kept, not "removed", whether or not this run publishes
        conn.execute(run.sql("export_hash_single"), (document.name, ""))
    run.flush_rendered()
    removed_row = conn.execute(run.sql("export_removed")).fetchone()
    run.removed = int(removed_row[0]) if removed_row else 0
    if not run.full and run.removed == 0 and not any(run.rendered.values()):
        return None
    run.writer.sequence_point()
    for document in stamps:
        run.render_single(document, always=True)
    run.flush_rendered()
    with conn.cursor(name="export_stale") as cursor:
        cursor.itersize = 10_000
        cursor.execute(run.sql("export_stale_paths"))
        run.writer.remove(row[0] for row in cursor)
    conn.execute(run.sql("export_commit_state", version=sql.Literal(run.version)))
    if not run.full and run.previous is not None:
        with conn.cursor(name="export_carried") as cursor:
            cursor.itersize = 10_000
            cursor.execute(run.sql("export_carried"), (run.version,))
            run.carried = run.writer.carry((row[0] for row in cursor), run.previous)
    sums, counts, checksums = _sums(run)
    run.writer.write(SUMS, sums)
    run.writer.flush()
    manifest = _manifest(
        run, counts=counts, checksums=checksums, sums_sha256=hashlib.sha256(sums).hexdigest()
    )
    run.target.switch(run.version, manifest)
    return sum(counts.values())


def _sums(run: _Run) -> tuple[bytes, dict[str, int], dict[str, dict[str, str]]]:
    """SHA256SUMS of every document, their count per kind, and the single documents' checksums."""
    lines: list[bytes] = []
    counts = {d.name: 0 for d in run.renderer.documents}
    single = {d.name for d in run.renderer.documents if not d.per_entity}
    checksums: dict[str, dict[str, str]] = {}
    with run.conn.cursor(name="export_sums") as cursor:
        cursor.itersize = 10_000
        cursor.execute(run.sql("export_sums"))
        for sha256, path, name in cursor:
            lines.append(f"{sha256}  {path}\n".encode())
            counts[name] = counts.get(name, 0) + 1
            if name in single:
                checksums[name] = {"path": path, "sha256": sha256}
    for document in run.renderer.documents:
        checksums.setdefault(document.name, {"path": document.path})
    return b"".join(lines), counts, checksums


def _manifest(
    run: _Run, *, counts: dict[str, int], checksums: dict[str, dict[str, str]], sums_sha256: str
) -> bytes:
    manifest = {
        "pipeline": run.catalog.pipeline,
        "version": run.version,
        "previous_version": run.previous,
        "generated_at": datetime.now(UTC).isoformat(),
        "root": run.target.version_root(run.version),
        "full": run.full,
        "counts": counts,
        "rendered": run.rendered,
        "documents": checksums,
        "sha256sums": sums_sha256,
    }
    run.renderer.validate(MANIFEST_SCHEMA, "manifest.json", manifest)
    return json.dumps(manifest, indent=2).encode() + b"\n"


def _discard(run: _Run, logger: Logger) -> None:
    """Remove the version being built (readers never saw it)."""
    try:
        run.writer.flush()
    except PublishError as exc:
        logger.warning("while discarding version %s: %s", run.version, exc)
    run.target.delete_version(run.version)


def _retain(run: _Run, keep: int, logger: Logger) -> tuple[str, ...]:
    """Keep the newest `keep` published versions; delete older ones and abandoned partial ones."""
    published = [row[0] for row in run.conn.execute(run.sql("export_published_versions"))]
    run.conn.rollback()
    kept = set(published[:keep]) | {run.target.current()}
    doomed = tuple(v for v in run.target.versions() if v not in kept)
    for version in doomed:
        run.target.delete_version(version)
    if doomed:
        with run.conn.transaction():
            run.conn.execute(run.sql("export_mark_deleted"), (list(doomed),))
        logger.info("deleted %d old export version(s): %s", len(doomed), ", ".join(doomed))
    return doomed
