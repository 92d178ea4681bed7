"""Where exported JSON is published: versions side by side, and one pointer readers follow.

A version is written completely under `versions/<version>/` while readers keep
reading the current one; only then does the pointer move, in one atomic step:

- a directory (`file:///dir`): `current` is a symlink to `versions/<version>`, swapped
  by renaming a new symlink over it (rename(2) is atomic);
- S3 (`s3://bucket/prefix`): `manifest.json` at the prefix names the version's root,
  and is written last, after every object of the version exists.

A reader resolves the pointer once (realpath of `current`, or GET `manifest.json`),
then reads only under that version's root: versions are never modified after the
switch, so it sees one version whole, and old versions stay for `keep_versions`
publishes, so a slow reader is not cut off mid-visit. Documents a new version takes
unchanged from the last one are hard links (directory) or server-side copies (S3),
so an incremental export only writes what changed.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

from dwh.settings import ExportSettings, StorageSettings
from dwh.storage import s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MANIFEST = "manifest.json"
VERSIONS = "versions"


class PublishError(RuntimeError):
    """The target refused a write or the switch; the message names the object."""


class VersionWriter(Protocol):
    """Writes one new version; nothing of it is visible to readers until `Target.switch`."""

    def write(self, path: str, data: bytes) -> None: ...

    def carry(self, paths: Iterable[str], from_version: str) -> int:
        """Take these documents unchanged from an earlier version; returns how many."""
        ...

    def flush(self) -> None:
        """Wait for every write and carry; raise the first failure."""
        ...


class Target(Protocol):
    url: str

    def current(self) -> str | None:
        """The version readers are sent to now, if any."""
        ...

    def versions(self) -> list[str]:
        """Every version present under versions/, complete or not."""
        ...

    def writer(self, version: str) -> VersionWriter: ...

    def switch(self, version: str, manifest: bytes) -> None:
        """Write the version's manifest, then point readers at it (atomically)."""
        ...

    def delete_version(self, version: str) -> None: ...

    def read(self, version: str, path: str) -> bytes:
        """A file of a version (readers, tests and checks)."""
        ...


@dataclass
class _Workers:
    """A thread pool with at most `2 x size` calls in flight, so memory stays flat.

    S3 writes are network round trips: threads overlap them while the caller renders
    the next document. The first failure is raised by `submit` or `join`.
    """

    size: int
    _pool: ThreadPoolExecutor = field(init=False)
    _slots: threading.BoundedSemaphore = field(init=False)
    _pending: list[Future[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="dwh-export")
        self._slots = threading.BoundedSemaphore(2 * self.size)

    def submit(self, call: Callable[[], None]) -> None:
        self._slots.acquire()
        future = self._pool.submit(call)
        future.add_done_callback(lambda _: self._slots.release())
        self._pending.append(future)
        if len(self._pending) >= 4 * self.size:
            self._collect(wait_all=False)

    def _collect(self, *, wait_all: bool) -> None:
        still: list[Future[None]] = []
        for future in self._pending:
            if wait_all or future.done():
                future.result()  # raises the first failure
            else:
                still.append(future)
        self._pending = still

    def join(self) -> None:
        try:
            self._collect(wait_all=True)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


# --- a directory ---------------------------------------------------------------------


@dataclass
class _LocalWriter:
    """Writes in the caller's thread: file creation does not overlap on one disk (measured)."""

    staging: Path
    root: Path
    _dirs: set[Path] = field(default_factory=set)

    def _target(self, path: str) -> Path:
        target = self.staging / path
        if target.parent not in self._dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(target.parent)
        return target

    def write(self, path: str, data: bytes) -> None:
        # Exclusive create: a version is written once, into a fresh folder, so a file that
        # exists already is a bug, and writing through it could change a carried hard
        # link, i.e. a document of a published version.
        try:
            with self._target(path).open("xb") as handle:
                handle.write(data)
        except FileExistsError as exc:
            msg = f"{path} was written twice in one version ({exc.filename})"
            raise PublishError(msg) from exc

    def carry(self, paths: Iterable[str], from_version: str) -> int:
        source = self.root / VERSIONS / from_version
        count = 0
        for path in paths:
            try:
                os.link(source / path, self._target(path))
            except FileNotFoundError as exc:
                msg = f"cannot carry {path} from version {from_version}: {exc.filename} is missing"
                raise PublishError(msg) from exc
            count += 1
        return count

    def flush(self) -> None:
        return None


@dataclass
class LocalTarget:
    """`<root>/versions/<version>/…` and the symlink `<root>/current`."""

    root: Path
    url: str = ""

    def __post_init__(self) -> None:
        self.url = self.url or f"file://{self.root}"
        (self.root / VERSIONS).mkdir(parents=True, exist_ok=True)

    def _staging(self, version: str) -> Path:
        return self.root / VERSIONS / f".{version}.partial"

    def current(self) -> str | None:
        link = self.root / "current"
        return link.readlink().name if link.is_symlink() else None

    def versions(self) -> list[str]:
        return sorted(p.name.strip(".").removesuffix(".partial") for p in (self.root / VERSIONS).iterdir())

    def writer(self, version: str) -> VersionWriter:
        staging = self._staging(version)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        return _LocalWriter(staging, self.root)

    def switch(self, version: str, manifest: bytes) -> None:
        staging, final = self._staging(version), self.root / VERSIONS / version
        (staging / MANIFEST).write_bytes(manifest)
        staging.rename(final)
        pointer = self.root / f".current.{version}"
        pointer.unlink(missing_ok=True)
        pointer.symlink_to(Path(VERSIONS) / version, target_is_directory=True)
        pointer.replace(self.root / "current")  # the atomic switch

    def delete_version(self, version: str) -> None:
        if version == self.current():
            msg = f"refusing to delete {version}: readers are pointed at it"
            raise PublishError(msg)
        for path in (self.root / VERSIONS / version, self._staging(version)):
            shutil.rmtree(path, ignore_errors=True)

    def read(self, version: str, path: str) -> bytes:
        return (self.root / VERSIONS / version / path).read_bytes()


# --- S3 ------------------------------------------------------------------------------


@dataclass
class _S3Writer:
    """Puts and server-side copies, `workers` at a time."""

    target: S3Target
    version: str
    workers: int
    _workers: _Workers = field(init=False)

    def __post_init__(self) -> None:
        self._workers = _Workers(self.workers)

    def write(self, path: str, data: bytes) -> None:
        self._workers.submit(partial(self.target.put, self.target.key(self.version, path), data))

    def carry(self, paths: Iterable[str], from_version: str) -> int:
        count = 0
        for path in paths:
            source, key = self.target.key(from_version, path), self.target.key(self.version, path)
            self._workers.submit(partial(self.target.copy, source, key))
            count += 1
        return count

    def flush(self) -> None:
        self._workers.join()


@dataclass
class S3Target:
    """`<prefix>/versions/<version>/…` and the pointer `<prefix>/manifest.json`."""

    bucket: str
    prefix: str
    client: S3Client = field(repr=False)
    workers: int = 16
    url: str = ""

    def __post_init__(self) -> None:
        self.url = self.url or f"s3://{self.bucket}/{self.prefix}"

    def key(self, version: str | None, path: str) -> str:
        parts = [self.prefix, *([VERSIONS, version] if version else []), path]
        return "/".join(p.strip("/") for p in parts if p.strip("/"))

    def put(self, key: str, data: bytes) -> None:
        content_type = "application/json" if key.endswith(".json") else "text/plain; charset=utf-8"
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            msg = f"upload of s3://{self.bucket}/{key} failed: {exc}"
            raise PublishError(msg) from exc

    def copy(self, source: str, key: str) -> None:
        try:
            self.client.copy_object(
                Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": source}
            )
        except (BotoCoreError, ClientError) as exc:
            msg = f"copy of s3://{self.bucket}/{source} to {key} failed: {exc}"
            raise PublishError(msg) from exc

    def current(self) -> str | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(None, MANIFEST))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        version = json.loads(body)["version"]
        return str(version)

    def versions(self) -> list[str]:
        base = self.key(None, VERSIONS) + "/"
        found: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=base, Delimiter="/"):
            found.extend(p["Prefix"][len(base) :].strip("/") for p in page.get("CommonPrefixes", []))
        return sorted(found)

    def writer(self, version: str) -> VersionWriter:
        return _S3Writer(self, version, self.workers)

    def switch(self, version: str, manifest: bytes) -> None:
        self.put(self.key(version, MANIFEST), manifest)
        self.put(self.key(None, MANIFEST), manifest)  # the pointer: written last

    def delete_version(self, version: str) -> None:
        if version == self.current():
            msg = f"refusing to delete {version}: readers are pointed at it"
            raise PublishError(msg)
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.key(version, "") + "/"):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})  # type: ignore[typeddict-item]

    def read(self, version: str, path: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=self.key(version, path))["Body"].read())


def open_target(settings: ExportSettings, pipeline: str) -> Target:
    """DWH_EXPORT_URL plus the pipeline's name: each pipeline publishes under its own folder."""
    parsed = urlparse(settings.url)
    if parsed.scheme == "s3":
        prefix = "/".join(p for p in (parsed.path.strip("/"), pipeline) if p)
        client = s3_client(StorageSettings(), max_pool_connections=settings.copy_workers + 4)
        return S3Target(parsed.netloc, prefix, client, settings.copy_workers)
    return LocalTarget(Path(parsed.path) / pipeline)
