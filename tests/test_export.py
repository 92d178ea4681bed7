"""JSON export on real PostGIS and a real S3 API: validated, incremental, atomically published.

Every test builds the OSM-notes datamarts from the generated source (a few hundred
users, a handful of countries), exports them to a local directory and to the moto
server, and reads the result back the way a reader would: resolve the pointer once,
then check every file against the version's SHA256SUMS and its JSON Schema.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from dwh.catalog import load_catalog
from dwh.cli import app
from dwh.export import SUMS, ExportError, ExportResult, Renderer, export_json
from dwh.publish import LocalTarget, Target, open_target
from dwh.seed import seed_source
from dwh.settings import ExportSettings, SourceSettings
from dwh.transform import exclusive_run
from tests.conftest import PIPELINES_DIR, SQL_DIR, Env
from tests.test_osm_notes import PIPELINE, owner, refresh, sync_bronze, transform

DWH = "osm_notes_dwh"
KINDS = pytest.mark.parametrize("storage_kind", ["file", "s3"], indirect=True)


@pytest.fixture
def built(env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Env:
    """The test's warehouse with datamarts built from 600 generated notes; exports go to its own place."""
    env.pipeline = PIPELINE
    env.migrate()
    url = f"{env.storage_url}/json" if env.storage_url.startswith("s3://") else f"file://{tmp_path / 'json'}"
    monkeypatch.setenv("DWH_EXPORT_URL", url)
    seed_source(SourceSettings().conninfo(), PIPELINE, rows=0, sql_dir=SQL_DIR, notes=600)  # type: ignore[call-arg]
    sync_bronze()
    transform()
    refresh()
    return env


def target() -> Target:
    return open_target(ExportSettings(), PIPELINE)


def export(*, full: bool = False, keep: int = 5, sql_dir: Path = SQL_DIR) -> ExportResult:
    catalog = load_catalog(PIPELINE, PIPELINES_DIR)
    return export_json(catalog, owner(), sql_dir, target(), full=full, keep_versions=keep)


def more_activity() -> None:
    """A second batch of notes and comments through the whole chain, datamarts included."""
    seed_source(SourceSettings().conninfo(), PIPELINE, rows=0, sql_dir=SQL_DIR, notes=60)  # type: ignore[call-arg]
    sync_bronze()
    transform()
    refresh()


@dataclass
class Published:
    version: str
    manifest: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)

    def doc(self, path: str) -> Any:
        return json.loads(self.files[path])


def read_published(where: Target) -> Published:
    """What a reader sees: the pointer resolved once, every file checked against SHA256SUMS."""
    version = where.current()
    assert version is not None, "nothing published"
    manifest = json.loads(where.read(version, "manifest.json"))
    assert manifest["version"] == version
    sums = where.read(version, SUMS)
    assert hashlib.sha256(sums).hexdigest() == manifest["sha256sums"]
    published = Published(version, manifest)
    for line in sums.decode().splitlines():
        sha256, path = line.split("  ", 1)
        data = where.read(version, path)
        assert hashlib.sha256(data).hexdigest() == sha256, f"{version}/{path} does not match SHA256SUMS"
        published.files[path] = data
    return published


def fanout(entity_id: object) -> str:
    return hashlib.md5(str(entity_id).encode(), usedforsecurity=False).hexdigest()[:2]


def schema(name: str) -> dict[str, Any]:
    return dict(json.loads((SQL_DIR / PIPELINE / "export" / f"{name}.schema.json").read_text()))


def datamart_hashes(env: Env, name: str, key: str) -> dict[str, str]:
    rows = env.query("wh", f"SELECT {key}::text, md5(t::text) FROM {DWH}.datamart_{name} AS t")
    return {str(k): str(h) for k, h in rows}


# ---------------------------------------------------------------------------------------


@KINDS
def test_full_export_publishes_every_document_valid_with_manifest_and_checksums(built: Env) -> None:
    result = export()

    published = read_published(target())
    assert result.version == published.version
    users = built.query("wh", f"SELECT user_id, username, actions, closed FROM {DWH}.datamart_users")
    countries = built.query("wh", f"SELECT country_id FROM {DWH}.datamart_countries")
    assert len(users) > 50
    assert published.manifest["counts"] == {
        "users": len(users),
        "countries": len(countries),
        "global": 1,
        "users_index": 1,
        "countries_index": 1,
    }
    assert result.rendered == published.manifest["counts"]
    user_files = sorted(p for p in published.files if p.startswith("users/"))
    assert len(user_files) == len(users)
    for path in user_files:
        match = re.fullmatch(r"users/([0-9a-f]{2})/(\d+)\.json", path)
        assert match, path
        assert match.group(1) == fanout(match.group(2))
    assert len({p.split("/")[1] for p in user_files}) > len(users) // 2  # fanned out, not one folder

    validators = {n: jsonschema.Draft202012Validator(schema(n)) for n in published.manifest["counts"]}
    kinds = {"users/": "users", "countries/": "countries", "global.json": "global"}
    kinds |= {"indexes/users.json": "users_index", "indexes/countries.json": "countries_index"}
    for path in published.files:
        kind = next(k for prefix, k in kinds.items() if path.startswith(prefix))
        errors = list(validators[kind].iter_errors(published.doc(path)))
        assert errors == [], f"{path}: {errors[0].message}"

    user_id, username, actions, closed = users[0]
    doc = published.doc(f"users/{fanout(user_id)}/{user_id}.json")
    assert (doc["user_id"], doc["username"], doc["actions"]["total"], doc["actions"]["closed"]) == (
        user_id,
        username,
        actions,
        closed,
    )
    index = published.doc("indexes/users.json")
    assert len(index) == len(users)
    assert set(index[0]) == {"id", "name", "actions", "closed", "rank"}  # a list view's fields only
    assert (
        published.manifest["documents"]["global"]["sha256"]
        == hashlib.sha256(published.files["global.json"]).hexdigest()
    )

    quiet = export()
    assert quiet.version is None
    assert sum(quiet.rendered.values()) == 0
    assert target().current() == published.version


@KINDS
def test_incremental_export_rewrites_exactly_the_changed_entities_and_equals_a_full_one(built: Env) -> None:
    first = export()
    old = read_published(target())
    renamed = {str(i) for (i,) in built.query("wh", f"SELECT user_id FROM {DWH}.datamart_users LIMIT 3")}
    built.query(
        "wh",
        f"UPDATE {DWH}.datamart_users SET username = username || ' (renamed)' WHERE user_id IN ({','.join(renamed)})",
    )

    second = export()

    assert second.previous == first.version
    assert second.rendered == {
        "users": 3,
        "countries": 0,
        "global": 0,
        "users_index": 1,
        "countries_index": 0,
    }
    assert second.carried == second.documents - 4
    new = read_published(target())
    changed_files = {p for p in new.files if old.files.get(p) != new.files[p]}
    assert changed_files == {f"users/{fanout(i)}/{i}.json" for i in renamed} | {"indexes/users.json"}
    where = target()
    if isinstance(where, LocalTarget):  # the unchanged documents are hard links, not rewrites
        versions = where.root / "versions"
        for path in new.files:
            inodes = {(versions / v / path).stat().st_ino for v in (old.version, new.version)}
            assert (len(inodes) == 1) == (path not in changed_files), path

    before = {"users": datamart_hashes(built, "users", "user_id")}
    before["countries"] = datamart_hashes(built, "countries", "country_id")
    more_activity()
    after = {"users": datamart_hashes(built, "users", "user_id")}
    after["countries"] = datamart_hashes(built, "countries", "country_id")
    changed = {k: {i for i, h in after[k].items() if before[k].get(i) != h} for k in after}
    assert changed["users"]

    third = export()

    assert third.rendered["users"] == len(changed["users"])
    assert third.rendered["countries"] == len(changed["countries"])
    incremental = read_published(target())
    full = export(full=True)
    assert full.rendered["users"] == len(after["users"])
    rebuilt = read_published(target())
    assert rebuilt.files == incremental.files  # incremental == full, byte for byte


@KINDS
def test_invalid_document_fails_the_run_naming_file_and_field_and_keeps_the_old_version(built: Env) -> None:
    first = export()
    bad, renamed = built.query("wh", f"SELECT min(user_id), max(user_id) FROM {DWH}.datamart_users")[0]
    built.query("wh", f"UPDATE {DWH}.datamart_users SET actions = -1 WHERE user_id = {bad}")
    built.query("wh", f"UPDATE {DWH}.datamart_users SET username = 'renamed' WHERE user_id = {renamed}")
    bad_fanout = fanout(bad)

    with pytest.raises(ExportError) as failure:
        export()

    message = str(failure.value)
    assert f"users/{bad_fanout}/{bad}.json" in message
    assert "$.actions.total" in message
    assert "rule minimum" in message
    assert target().current() == first.version
    assert target().versions() == [first.version]  # the rejected version is gone
    assert read_published(target()).version == first.version
    status = built.query(
        "wh", "SELECT status, error_message FROM osm_notes_control.export_versions ORDER BY started_at"
    )
    assert [s for s, _ in status] == ["published", "failed"]
    assert f"{bad}.json" in str(status[1][1])

    built.query("wh", f"UPDATE {DWH}.datamart_users SET actions = 3 WHERE user_id = {bad}")
    retried = export()

    assert retried.rendered["users"] == 2  # the rejected one and the renamed one: neither counted before
    published = read_published(target())
    assert published.doc(f"users/{bad_fanout}/{bad}.json")["actions"]["total"] == 3


def test_missing_or_broken_schema_is_an_error_never_a_skip(tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    catalog = load_catalog(PIPELINE, PIPELINES_DIR)
    (sql_dir / PIPELINE / "export" / "countries.schema.json").unlink()
    with pytest.raises(ExportError, match=r"JSON Schema not found: .*countries\.schema\.json"):
        export_json(catalog, "dbname=unused", sql_dir, LocalTarget(tmp_path / "out"))
    assert not (tmp_path / "out" / "current").exists()

    (sql_dir / PIPELINE / "export" / "countries.schema.json").write_text('{"type": "objekt"}')
    with pytest.raises(ExportError, match=r"countries\.schema\.json: not a valid JSON Schema"):
        Renderer(catalog, sql_dir).validators  # noqa: B018


@KINDS
def test_a_reader_polling_during_publishes_never_sees_a_partial_or_mixed_version(built: Env) -> None:
    export()
    stop = threading.Event()
    seen: list[str] = []
    errors: list[BaseException] = []

    def reader() -> None:
        where = target()
        while not stop.is_set():
            try:
                published = read_published(where)
                counts = published.manifest["counts"]
                assert len([p for p in published.files if p.startswith("users/")]) == counts["users"]
                assert len(published.doc("indexes/users.json")) == counts["users"]
                seen.append(published.version)
            except BaseException as exc:  # noqa: BLE001  (reported by the main thread)
                errors.append(exc)
                return

    def reader_reached(version: str) -> None:
        """Wait until the reader has read `version` whole: the next publish then meets a read in flight."""
        deadline = time.monotonic() + 120
        while version not in seen and not errors and time.monotonic() < deadline:
            time.sleep(0.05)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    published = [target().current()]
    try:
        for step in range(4):
            reader_reached(str(published[-1]))
            built.query(
                "wh", f"UPDATE {DWH}.datamart_users SET actions = actions + 1 WHERE mod(user_id, 5) = {step}"
            )
            built.query("wh", f"UPDATE {DWH}.datamart_global SET actions = actions + 1")
            published.append(export().version)
        reader_reached(str(published[-1]))
    finally:
        stop.set()
        thread.join(timeout=60)
    assert errors == [], f"the reader saw a broken version: {errors[0]!r}"
    assert set(seen) == set(published), f"{len(seen)} reads saw {sorted(set(seen))}, published {published}"


def test_only_the_newest_versions_are_kept(built: Env) -> None:
    versions = []
    for step in range(4):
        built.query("wh", f"UPDATE {DWH}.datamart_global SET actions = actions + {step + 1}")
        result = export(keep=2)
        versions.append(result.version)
    assert target().versions() == sorted(versions[-2:])
    assert target().current() == versions[-1]
    rows = built.query("wh", "SELECT version, status FROM osm_notes_control.export_versions ORDER BY version")
    assert rows == [(v, "deleted") for v in versions[:2]] + [(v, "published") for v in versions[2:]]


@pytest.mark.usefixtures("prefect_harness", "built")
def test_cli_exports_then_reports_nothing_changed_and_skips_an_overlapping_run() -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["export-json", PIPELINE])
    assert first.exit_code == 0, first.output
    assert "published to file://" in " ".join(first.output.split())  # the console wraps long lines
    quiet = runner.invoke(app, ["export-json", PIPELINE])
    assert quiet.exit_code == 0, quiet.output
    assert "nothing changed since" in " ".join(quiet.output.split())
    full = runner.invoke(app, ["export-json", PIPELINE, "--full"])
    assert "(full)" in " ".join(full.output.split())

    with exclusive_run(owner(), f"dwh:{PIPELINE}:export") as held:
        assert held
        skipped = runner.invoke(app, ["export-json", PIPELINE])
    assert skipped.exit_code == 0, skipped.output
    assert "skipped: another export_json run of osm_notes is in progress" in " ".join(skipped.output.split())
