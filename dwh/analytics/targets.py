"""The two publish targets, a directory and S3, and `open_target` choosing between them.

The contract they keep (whole versions on a directory, in-place documents then the
manifest on S3) is described in `dwh.analytics.publish`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

from dwh.analytics.publish import MANIFEST, VERSIONS, PublishError, Target, VersionWriter, check_relative
from dwh.core.settings import ExportSettings, StorageSettings
from dwh.ingest.storage import s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


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
            with self._target(check_relative(path)).open("xb") as handle:
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

    def sequence_point(self) -> None:
        return None  # the whole version appears at once

    def remove(self, paths: Iterable[str]) -> None:
        for _ in paths:  # a new version simply does not carry them
            pass


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

    def version_root(self, version: str) -> str:
        return f"{VERSIONS}/{version}/"

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
    """Spools the run's documents on local disk; `S3Target.switch` uploads them in order.

    Nothing reaches the bucket before the export has validated every document, and an
    unchanged document costs no request at all (it is already in place).
    """

    target: S3Target
    version: str
    spool: Path
    groups: list[list[str]] = field(default_factory=lambda: [[]])
    removed: list[str] = field(default_factory=list)

    def write(self, path: str, data: bytes) -> None:
        spooled = self.spool / check_relative(path)
        spooled.parent.mkdir(parents=True, exist_ok=True)
        try:
            with spooled.open("xb") as handle:
                handle.write(data)
        except FileExistsError as exc:
            msg = f"{path} was written twice in one version"
            raise PublishError(msg) from exc
        self.groups[-1].append(path)

    def carry(self, paths: Iterable[str], from_version: str) -> int:  # noqa: ARG002  (in place already)
        return sum(1 for _ in paths)

    def flush(self) -> None:
        return None

    def sequence_point(self) -> None:
        if self.groups[-1]:
            self.groups.append([])

    def remove(self, paths: Iterable[str]) -> None:
        self.removed.extend(paths)


@dataclass
class S3Target:
    """Documents at their fixed paths under `<prefix>/`; `<prefix>/manifest.json` names the version."""

    bucket: str
    prefix: str
    client: S3Client = field(repr=False)
    workers: int = 16
    url: str = ""
    _writers: dict[str, _S3Writer] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url or f"s3://{self.bucket}/{self.prefix}"

    def key(self, path: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, path) if p.strip("/"))

    def put(self, key: str, data: bytes) -> None:
        content_type = "application/json" if key.endswith(".json") else "text/plain; charset=utf-8"
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            msg = f"upload of s3://{self.bucket}/{key} failed: {exc}"
            raise PublishError(msg) from exc

    def delete(self, keys: list[str]) -> None:
        try:
            answer = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
            )
        except (BotoCoreError, ClientError) as exc:
            msg = f"delete of {len(keys)} object(s) under s3://{self.bucket}/{self.prefix} failed: {exc}"
            raise PublishError(msg) from exc
        if answer.get("Errors"):
            first = answer["Errors"][0]
            msg = f"delete of s3://{self.bucket}/{first.get('Key')} failed: {first.get('Message')}"
            raise PublishError(msg)

    def current(self) -> str | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(MANIFEST))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        version = json.loads(body)["version"]
        return str(version)

    def versions(self) -> list[str]:
        """Only the current one: S3 keeps no old versions (documents are replaced in place)."""
        current = self.current()
        return [current] if current else []

    def writer(self, version: str) -> VersionWriter:
        spool = Path(tempfile.mkdtemp(prefix=f"dwh-export-{version}-"))
        self._writers[version] = _S3Writer(self, version, spool)
        return self._writers[version]

    def version_root(self, version: str) -> str:  # noqa: ARG002  (one tree, in place)
        return ""

    def switch(self, version: str, manifest: bytes) -> None:
        """Upload the spooled documents group by group, delete what left, write the manifest last."""
        writer = self._writers[version]
        for group in writer.groups:
            workers = _Workers(self.workers)
            try:
                for path in group:
                    workers.submit(partial(self._upload, writer.spool, path))
            finally:
                workers.join()
        for start in range(0, len(writer.removed), 1000):  # DeleteObjects takes 1,000 keys
            self.delete([self.key(p) for p in writer.removed[start : start + 1000]])
        self.put(self.key(MANIFEST), manifest)
        self._drop(version)

    def _upload(self, spool: Path, path: str) -> None:
        self.put(self.key(path), (spool / path).read_bytes())

    def _drop(self, version: str) -> None:
        writer = self._writers.pop(version, None)
        if writer is not None:
            shutil.rmtree(writer.spool, ignore_errors=True)

    def delete_version(self, version: str) -> None:
        """A version that was not published: only its local spool exists."""
        if version == self.current():
            msg = f"refusing to delete {version}: readers are pointed at it"
            raise PublishError(msg)
        self._drop(version)

    def read(self, version: str, path: str) -> bytes:  # noqa: ARG002  (one tree: what is there now)
        return bytes(self.client.get_object(Bucket=self.bucket, Key=self.key(path))["Body"].read())


def open_target(settings: ExportSettings, pipeline: str) -> Target:
    """DWH_EXPORT_URL plus the pipeline's name: each pipeline publishes under its own folder."""
    parsed = urlparse(settings.url)
    if parsed.scheme == "s3":
        prefix = "/".join(p for p in (parsed.path.strip("/"), pipeline) if p)
        client = s3_client(StorageSettings(), max_pool_connections=settings.copy_workers + 4)
        return S3Target(parsed.netloc, prefix, client, settings.copy_workers)
    return LocalTarget(Path(parsed.path) / pipeline)
