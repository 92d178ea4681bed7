"""JSON export on real PostGIS and a real S3 API: validated, incremental, atomically published.

Every test builds the OSM-notes datamarts from the generated source (a few hundred
users, a handful of countries), exports them to a local directory and to the moto
server, and reads the result back the way a reader would: resolve the pointer once,
then check every file against the version's SHA256SUMS and its JSON Schema, and
follow OSM-Notes-Viewer's paths (src/js/utils/userPaths.js, src/config/api-config.js)
from the indexes to every profile. Nothing is fetched at run time: the schemas are ours
(sql/osm_notes/export/*.schema.json), written to be at least as strict as the
OSM-Notes-Common contract for every field we publish.
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
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from dwh.analytics.documents import ExportError, Renderer, viewer_shard
from dwh.analytics.export import SUMS, ExportResult, export_json
from dwh.analytics.publish import Target
from dwh.analytics.targets import LocalTarget, S3Target, open_target
from dwh.cli import app
from dwh.core.catalog import load_catalog
from dwh.core.names import lock_key
from dwh.core.settings import ExportSettings
from dwh.ingest.locks import exclusive_run
from dwh.onboarding.seed import seed_source
from tests.conftest import PIPELINES_DIR, SQL_DIR, Env, app_conninfo
from tests.osm_notes import PIPELINE, owner, refresh, sync_bronze, transform

DWH = "osm_notes_dwh"
KINDS = pytest.mark.parametrize("storage_kind", ["file", "s3"], indirect=True)


@pytest.fixture
def built(env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Env:
    """The test's warehouse with datamarts built from 600 generated notes; exports go to its own place."""
    env.pipeline = PIPELINE
    env.migrate()
    url = f"{env.storage_url}/json" if env.storage_url.startswith("s3://") else f"file://{tmp_path / 'json'}"
    monkeypatch.setenv("DWH_EXPORT_URL", url)
    seed_source(app_conninfo(), PIPELINE, rows=0, sql_dir=SQL_DIR, notes=600)  # type: ignore[call-arg]
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
    seed_source(app_conninfo(), PIPELINE, rows=0, sql_dir=SQL_DIR, notes=60)  # type: ignore[call-arg]
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


def user_path(user_id: object) -> str:
    """The viewer's getUserPath, written out again here: h = format(id % 4096, '03x'), one digit a level."""
    h = format(int(str(user_id)) % 4096, "03x")
    return f"users/{h[0]}/{h[1]}/{h[2]}/{user_id}.json"


KIND_OF = {
    "indexes/users.json": "users_index",
    "indexes/countries.json": "countries_index",
    "global_stats.json": "global_stats",
    "metadata.json": "metadata",
}
COUNTS_ALL = {"users", "countries", "users_index", "countries_index", "global_stats", "metadata"}


def kind_of(path: str) -> str:
    return KIND_OF.get(path) or path.split("/", 1)[0]


def named_users(env: Env) -> list[tuple[Any, ...]]:
    """The users the export publishes: named, OSM uid >= 1 (the contract wants both)."""
    return env.query(
        "wh",
        f"SELECT user_id, username, opened, closed FROM {DWH}.datamart_users "
        "WHERE username IS NOT NULL AND user_id >= 1 ORDER BY user_id",
    )


def bump(env: Env, table: str, where: str = "true", by: int = 1) -> None:
    """Change what a profile shows (history_whole_open), so its document changes."""
    env.query(
        "wh",
        f"UPDATE {DWH}.datamart_{table} SET profile = jsonb_set(profile, '{{history_whole_open}}', "
        f"to_jsonb((profile ->> 'history_whole_open')::integer + {by})) WHERE {where}",
    )


def schema(name: str) -> dict[str, Any]:
    return dict(json.loads((SQL_DIR / PIPELINE / "export" / f"{name}.schema.json").read_text()))


def datamart_hashes(env: Env, name: str, key: str) -> dict[str, str]:
    rows = env.query("wh", f"SELECT {key}::text, md5(t::text) FROM {DWH}.datamart_{name} AS t")
    return {str(k): str(h) for k, h in rows}


# ---------------------------------------------------------------------------------------


def test_user_paths_match_the_viewers_get_user_path() -> None:
    # Values worked out by hand from userPaths.js: (id % 4096).toString(16).padStart(3, '0').
    expected = {
        "0": "0/0/0",
        "1": "0/0/1",
        "4095": "f/f/f",
        "4096": "0/0/0",
        "4097": "0/0/1",
        "12345": "0/3/9",
        "1234567": "6/8/7",
        "23670762": "f/e/a",
        "2147483647": "f/f/f",
        "9999999999": "3/f/f",
    }
    assert {i: viewer_shard(i) for i in expected} == expected
    for bad in ("-1", "12a", "007", ""):
        with pytest.raises(ExportError, match="integer id >= 0"):
            viewer_shard(bad)


@KINDS
def test_full_export_publishes_the_viewers_layout_every_document_valid_and_every_index_entry_resolves(
    built: Env,
) -> None:
    result = export()

    published = read_published(target())
    assert result.version == published.version
    users = named_users(built)
    countries = built.query("wh", f"SELECT country_id FROM {DWH}.datamart_countries")
    assert len(users) > 50
    assert any(c == -1 for (c,) in countries)  # international waters: a profile, no index entry
    assert published.manifest["counts"] == {
        "users": len(users),
        "countries": len(countries),
        "users_index": 1,
        "countries_index": 1,
        "global_stats": 1,
        "metadata": 1,
    }
    assert result.rendered == published.manifest["counts"]
    user_files = sorted(p for p in published.files if p.startswith("users/"))
    assert user_files == sorted(user_path(u[0]) for u in users)
    for path in user_files:
        assert re.fullmatch(r"users/[0-9a-f]/[0-9a-f]/[0-9a-f]/[1-9][0-9]*\.json", path), path
    assert sorted(p for p in published.files if p.startswith("countries/")) == sorted(
        f"countries/{c}.json" for (c,) in countries
    )

    validators = {n: jsonschema.Draft202012Validator(schema(n)) for n in COUNTS_ALL}
    for path in published.files:
        errors = list(validators[kind_of(path)].iter_errors(published.doc(path)))
        assert errors == [], f"{path}: {errors[0].json_path}: {errors[0].message}"

    # The viewer's way in: metadata, then an index, then each entry's own document.
    metadata = published.doc("metadata.json")
    user_index = published.doc("indexes/users.json")
    country_index = published.doc("indexes/countries.json")
    assert (metadata["total_users"], metadata["total_countries"]) == (len(user_index), len(country_index))
    assert [e["user_id"] for e in user_index] == [u[0] for u in users]
    assert [e["country_id"] for e in country_index] == sorted(c for (c,) in countries if c >= 1)
    for entry in user_index:
        doc = published.doc(user_path(entry["user_id"]))
        assert (doc["user_id"], doc["username"]) == (entry["user_id"], entry["username"])
        assert doc["history_whole_open"] == entry["history_whole_open"]
    for entry in country_index:
        doc = published.doc(f"countries/{entry['country_id']}.json")
        assert (doc["country_id"], doc["country_name"]) == (entry["country_id"], entry["country_name"])
    user_id, username, opened, closed = users[0]
    doc = published.doc(user_path(user_id))
    assert (doc["username"], doc["history_whole_open"], doc["history_whole_closed"]) == (
        username,
        opened,
        closed,
    )
    assert doc.get("lastest_open_note_id") == doc.get("latest_open_note_id")
    assert set(user_index[0]) == {  # a list view's fields only: ~300k entries stay small
        "user_id", "username", "history_whole_open", "history_whole_closed", "history_year_open",
        "history_year_closed",
    }  # fmt: skip
    assert (
        published.manifest["documents"]["global_stats"]["sha256"]
        == hashlib.sha256(published.files["global_stats.json"]).hexdigest()
    )

    quiet = export()
    assert quiet.version is None
    assert sum(quiet.rendered.values()) == 0
    assert target().current() == published.version


@KINDS
def test_incremental_export_rewrites_exactly_the_changed_entities_and_equals_a_full_one(built: Env) -> None:
    first = export()
    old = read_published(target())
    renamed = {str(u[0]) for u in named_users(built)[:3]}
    built.query(
        "wh",
        f"UPDATE {DWH}.datamart_users SET username = username || ' (renamed)' WHERE user_id IN ({','.join(renamed)})",
    )

    second = export()

    assert second.previous == first.version
    assert second.rendered == {
        "users": 3,
        "countries": 0,
        "users_index": 1,
        "countries_index": 0,
        "global_stats": 0,
        "metadata": 1,
    }
    assert second.carried == second.documents - 5
    new = read_published(target())
    changed_files = {p for p in new.files if old.files.get(p) != new.files[p]}
    rewritten = {user_path(i) for i in renamed} | {"indexes/users.json", "metadata.json"}
    # metadata.json is rendered on every publish; its bytes differ unless both ran in the same second
    assert rewritten - {"metadata.json"} <= changed_files <= rewritten
    where = target()
    if isinstance(where, LocalTarget):  # the unchanged documents are hard links, not rewrites
        versions = where.root / "versions"
        for path in new.files:
            inodes = {(versions / v / path).stat().st_ino for v in (old.version, new.version)}
            assert (len(inodes) == 1) == (path not in rewritten), path

    before = {"users": datamart_hashes(built, "users", "user_id")}
    before["countries"] = datamart_hashes(built, "countries", "country_id")
    more_activity()
    after = {"users": datamart_hashes(built, "users", "user_id")}
    after["countries"] = datamart_hashes(built, "countries", "country_id")
    changed = {k: {i for i, h in after[k].items() if before[k].get(i) != h} for k in after}
    assert changed["users"]
    # Only the users the refresh recomputed changed: the ranks every new action moves
    # are kept apart from the rows, so no other profile is rendered again.
    refreshed = built.query(
        "wh",
        "SELECT rows_refreshed FROM osm_notes_control.datamart_runs WHERE datamart = 'users' "
        "ORDER BY started_at DESC LIMIT 1",
    )[0][0]
    assert len(changed["users"]) <= refreshed < len(after["users"])

    third = export()

    assert third.rendered["users"] == len(changed["users"])
    assert third.rendered["countries"] == len(changed["countries"])
    incremental = read_published(target())
    full = export(full=True)
    assert full.rendered["users"] == len(after["users"])
    rebuilt = read_published(target())
    # incremental == full, byte for byte, but for the moment of export in metadata.json
    stamp = {"export_date", "export_timestamp"}
    assert {p: d for p, d in rebuilt.files.items() if p != "metadata.json"} == {
        p: d for p, d in incremental.files.items() if p != "metadata.json"
    }
    assert {k: v for k, v in rebuilt.doc("metadata.json").items() if k not in stamp} == {
        k: v for k, v in incremental.doc("metadata.json").items() if k not in stamp
    }


@KINDS
def test_invalid_document_fails_the_run_naming_file_and_field_and_keeps_the_old_version(built: Env) -> None:
    first = export()
    users = named_users(built)
    bad, renamed = users[0][0], users[-1][0]
    built.query(
        "wh",
        f"UPDATE {DWH}.datamart_users SET profile = jsonb_set(profile, '{{history_whole_open}}', '-1') "
        f"WHERE user_id = {bad}",
    )
    built.query("wh", f"UPDATE {DWH}.datamart_users SET username = 'renamed' WHERE user_id = {renamed}")

    with pytest.raises(ExportError) as failure:
        export()

    message = str(failure.value)
    assert user_path(bad) in message
    assert "$.history_whole_open" in message
    assert "rule minimum" in message
    assert target().current() == first.version
    assert target().versions() == [first.version]  # the rejected version is gone
    assert read_published(target()).version == first.version
    status = built.query(
        "wh", "SELECT status, error_message FROM osm_notes_control.export_versions ORDER BY started_at"
    )
    assert [s for s, _ in status] == ["published", "failed"]
    assert f"{bad}.json" in str(status[1][1])

    built.query(
        "wh",
        f"UPDATE {DWH}.datamart_users SET profile = jsonb_set(profile, '{{history_whole_open}}', '3') "
        f"WHERE user_id = {bad}",
    )
    retried = export()

    assert retried.rendered["users"] == 2  # the rejected one and the renamed one: neither counted before
    published = read_published(target())
    assert published.doc(user_path(bad))["history_whole_open"] == 3


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


@pytest.mark.parametrize("storage_kind", ["file"], indirect=True)
def test_a_reader_polling_during_publishes_never_sees_a_partial_or_mixed_version(built: Env) -> None:
    """A directory keeps whole versions: a reader that resolved `current` reads one version, whole."""
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
            bump(built, "users", f"mod(user_id, 5) = {step}")
            bump(built, "global")
            published.append(export().version)
        reader_reached(str(published[-1]))
    finally:
        stop.set()
        thread.join(timeout=60)
    assert errors == [], f"the reader saw a broken version: {errors[0]!r}"
    assert set(seen) == set(published), f"{len(seen)} reads saw {sorted(set(seen))}, published {published}"


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
def test_an_s3_reader_during_publishes_only_ever_gets_whole_documents_of_published_versions(
    built: Env,
) -> None:
    """S3 is published in place: a GET returns a whole document of a published version, never a torn or
    unvalidated one, and once the manifest names a version every document reads as that version's."""
    export()
    watched = ["metadata.json", "indexes/users.json", "global_stats.json"]
    watched += [user_path(u[0]) for u in named_users(built)[:25]]
    stop = threading.Event()
    reads: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    validators = {n: jsonschema.Draft202012Validator(schema(n)) for n in COUNTS_ALL}

    def reader() -> None:
        where = target()
        while not stop.is_set():
            for path in watched:
                try:
                    data = where.read("", path)
                    errors.extend(validators[kind_of(path)].iter_errors(json.loads(data)))
                    reads.append((path, hashlib.sha256(data).hexdigest()))
                except BaseException as exc:  # noqa: BLE001  (reported by the main thread)
                    errors.append(exc)
                    return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    published = {(path, sha) for path, sha in _sums(read_published(target()))}
    try:
        for step in range(4):
            time.sleep(0.2)
            bump(built, "users", f"mod(user_id, 2) = {step % 2}")
            bump(built, "global")
            export()
            published |= set(_sums(read_published(target())))
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert errors == [], f"the reader got a broken document: {errors[0]!r}"
    assert {p for p, _ in reads} == set(watched)
    assert set(reads) <= published, sorted(set(reads) - published)[:3]
    assert len({sha for p, sha in reads if p == "indexes/users.json"}) > 1  # it did read across publishes
    final = read_published(target())  # now quiet: every file matches the manifest's SHA256SUMS
    assert final.version == target().current()


def _sums(published: Published) -> list[tuple[str, str]]:
    return [(p, hashlib.sha256(d).hexdigest()) for p, d in published.files.items()]


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
def test_s3_incremental_publish_costs_requests_for_the_changed_documents_only(built: Env) -> None:
    where = target()
    assert isinstance(where, S3Target)
    calls: list[str] = []
    where.client.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    catalog = load_catalog(PIPELINE, PIPELINES_DIR)
    first = export_json(catalog, owner(), SQL_DIR, where)
    assert calls.count("PutObject") == first.documents + 2  # + SHA256SUMS + manifest.json
    assert "CopyObject" not in calls

    renamed = [u[0] for u in named_users(built)[:3]]
    built.query(
        "wh",
        f"UPDATE {DWH}.datamart_users SET username = username || ' (renamed)' "
        f"WHERE user_id IN ({','.join(map(str, renamed))})",
    )
    calls.clear()
    second = export_json(catalog, owner(), SQL_DIR, where)
    # 3 profiles + users index + metadata + SHA256SUMS + manifest; the other documents cost nothing.
    assert second.carried == second.documents - 5 > 100
    assert sorted(c for c in calls if c != "GetObject") == ["PutObject"] * 7
    assert calls.count("GetObject") <= 3  # the manifest, read to find the current version
    assert json.loads(where.read("", user_path(renamed[0])))["username"].endswith(" (renamed)")

    gone = renamed[1]
    built.query("wh", f"DELETE FROM {DWH}.datamart_users WHERE user_id = {gone}")
    calls.clear()
    third = export_json(catalog, owner(), SQL_DIR, where)
    assert third.removed == 1
    assert calls.count("DeleteObjects") == 1
    assert calls.count("PutObject") == 4  # users index, metadata, SHA256SUMS, manifest
    with pytest.raises(ClientError, match=r"NoSuchKey|Not Found|404"):
        where.read("", user_path(gone))
    assert gone not in [e["user_id"] for e in json.loads(where.read("", "indexes/users.json"))]
    read_published(where)  # and what is left matches the manifest's SHA256SUMS


def test_only_the_newest_versions_are_kept(built: Env) -> None:
    versions = []
    for step in range(4):
        bump(built, "global", by=step + 1)
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

    with exclusive_run(owner(), lock_key(PIPELINE, "flow", "export_json")) as held:
        assert held
        skipped = runner.invoke(app, ["export-json", PIPELINE])
    assert skipped.exit_code == 0, skipped.output
    assert "skipped: another export_json run of osm_notes is in progress" in " ".join(skipped.output.split())


ESCAPES = ["../../../../x", "a/b", "..", ".", "", "x\x00y", "x\ny", "x\\y"]


@pytest.mark.parametrize("entity_id", ESCAPES)
def test_an_entity_id_that_is_not_a_plain_file_name_is_refused_naming_the_document(entity_id: str) -> None:
    from dwh.analytics.documents import document_path  # noqa: PLC0415
    from dwh.core.export_spec import ExportDocument  # noqa: PLC0415

    for path in ("users/{fanout}/{id}.json", "countries/{id}.json"):
        with pytest.raises(ExportError, match=r"users: entity id .* cannot be a file name"):
            document_path(ExportDocument(name="users", path=path), entity_id)
    assert (
        document_path(ExportDocument(name="users", path="countries/{id}.json"), "-1") == "countries/-1.json"
    )


@pytest.mark.parametrize(
    "path", ["../../outside.json", "users/../../../outside.json", "/abs/outside.json", "a//b.json"]
)
def test_no_target_writes_a_path_outside_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    import tempfile  # noqa: PLC0415

    import boto3  # noqa: PLC0415

    from dwh.analytics.publish import PublishError  # noqa: PLC0415

    # The S3 writer spools under the temp dir: keep even a wrong write inside tmp_path.
    deep = tmp_path / "t" / "m" / "p"
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    local = LocalTarget(tmp_path / "json" / "osm_notes")
    never_called = boto3.client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    s3 = S3Target("bucket", "json/osm_notes", never_called)
    for target in (local, s3):
        writer = target.writer("v1")
        with pytest.raises(PublishError, match="must stay inside the version"):
            writer.write(path, b"{}")
    assert not list(tmp_path.rglob("outside.json")), "nothing was written anywhere"
