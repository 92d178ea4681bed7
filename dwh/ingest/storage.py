"""Object storage for CSV parts: a local directory or any S3-compatible API.

Both back-ends give the same guarantees the load depends on: a part becomes visible
under its final key only once complete (temp name + rename locally, a single
completed (multipart) upload on S3), and `move` copies, confirms the copy, and only
then deletes the source, so a crash in between leaves the file in both places, never
in neither (seed §4 Phase D step 8).
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol
from urllib.parse import urlparse

from dwh.core.settings import StorageSettings

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from mypy_boto3_s3 import S3Client

# boto3 is imported where S3 is used: it costs ~0.4 s, which commands on file:// storage
# (and `dwh --help`) should not pay.
_PART_BYTES = 16 * 2**20


@cache
def _multipart() -> TransferConfig:
    from boto3.s3.transfer import TransferConfig  # noqa: PLC0415

    return TransferConfig(multipart_threshold=_PART_BYTES, multipart_chunksize=_PART_BYTES)


class StorageError(RuntimeError):
    """Object storage refused or lost something; the message names the key."""


class Storage(Protocol):
    """What the engine needs from object storage; keys are '/'-separated paths."""

    def url(self, key: str) -> str: ...

    def staging_path(self, key: str, spool: Path) -> Path:
        """Where to write a part before `publish` makes it visible under `key`."""
        ...

    def publish(self, staged: Path, key: str) -> None: ...

    @contextmanager
    def open_read(self, key: str) -> Iterator[IO[bytes]]: ...

    def list(self, prefix: str) -> list[str]: ...

    def size(self, key: str) -> int | None: ...

    def move(self, src: str, dst: str) -> None: ...

    def delete(self, key: str) -> None: ...


@dataclass
class LocalStorage:
    """A directory tree; used for the embedded default and for tests."""

    root: Path

    def _path(self, key: str) -> Path:
        return self.root / key

    def url(self, key: str) -> str:
        return f"file://{self._path(key)}"

    def staging_path(self, key: str, spool: Path) -> Path:  # noqa: ARG002
        # Next to the target, so publishing is one atomic rename and no second copy.
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")

    def publish(self, staged: Path, key: str) -> None:
        staged.replace(self._path(key))

    @contextmanager
    def open_read(self, key: str) -> Iterator[IO[bytes]]:
        try:
            handle = self._path(key).open("rb")
        except FileNotFoundError:
            msg = f"{self.url(key)}: no such file"
            raise StorageError(msg) from None
        with handle:
            yield handle

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def move(self, src: str, dst: str) -> None:
        source, target = self._path(src), self._path(dst)
        if not source.is_file():
            if target.is_file():
                return  # an earlier attempt finished the move
            msg = f"cannot move {self.url(src)}: no such file"
            raise StorageError(msg)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            staged = self.staging_path(dst, target.parent)
            shutil.copyfile(source, staged)
            self.publish(staged, dst)
        if self.size(dst) != source.stat().st_size:
            msg = f"copy of {self.url(src)} to {self.url(dst)} differs in size; kept both"
            raise StorageError(msg)
        source.unlink()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


@dataclass
class S3Storage:
    """A bucket and key prefix on any S3 API (AWS, MinIO, rustfs, moto)."""

    bucket: str
    client: S3Client = field(repr=False)
    # Server-side encryption headers for every object we write (DWH_STORAGE_SSE): parts,
    # their copies in processed/ and backups. Bucket default encryption does the same
    # for every writer, Prefect's results included, and is the first choice.
    encryption: dict[str, str] = field(default_factory=dict)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def staging_path(self, key: str, spool: Path) -> Path:
        return spool / f"{uuid.uuid4().hex}-{key.rsplit('/', 1)[-1]}"

    def publish(self, staged: Path, key: str) -> None:
        """Upload in 16 MB multipart chunks: the object appears only when complete."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            self.client.upload_file(
                str(staged), self.bucket, key, Config=_multipart(), ExtraArgs=self.encryption or None
            )
        except (BotoCoreError, ClientError) as exc:
            msg = f"upload to {self.url(key)} failed: {exc}"
            raise StorageError(msg) from exc
        finally:
            staged.unlink(missing_ok=True)

    @contextmanager
    def open_read(self, key: str) -> Iterator[IO[bytes]]:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            msg = f"{self.url(key)}: cannot read: {exc}"
            raise StorageError(msg) from exc
        try:
            yield body  # type: ignore[misc]  # StreamingBody is a readable binary stream
        finally:
            body.close()

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix.rstrip("/") + "/"):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise

    def move(self, src: str, dst: str) -> None:
        source_size = self.size(src)
        if source_size is None:
            if self.size(dst) is not None:
                return  # an earlier attempt finished the move
            msg = f"cannot move {self.url(src)}: no such object"
            raise StorageError(msg)
        self.client.copy(
            {"Bucket": self.bucket, "Key": src},
            self.bucket,
            dst,
            Config=_multipart(),
            ExtraArgs=self.encryption or None,
        )
        if self.size(dst) != source_size:
            msg = f"copy of {self.url(src)} to {self.url(dst)} differs in size; kept both"
            raise StorageError(msg)
        self.client.delete_object(Bucket=self.bucket, Key=src)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


@dataclass(frozen=True)
class Location:
    """A storage back-end plus the key prefix everything of this install lives under."""

    storage: Storage
    prefix: str

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))


def s3_client(settings: StorageSettings, *, max_pool_connections: int | None = None) -> S3Client:
    """A boto3 S3 client: through prefect-aws when a credentials block is named, else from settings.

    Without a block the client is built as prefect-aws would build it from the same
    settings, but without importing Prefect, so a command that runs no flow (`dwh
    drift`, `preflight`…) starts fast on S3 storage too.
    `max_pool_connections` sizes the HTTP pool for callers that use the client from
    that many threads at once (botocore keeps 10 and discards the rest otherwise).
    """
    if not settings.credentials_block:
        return _env_s3_client(settings, max_pool_connections)
    from dwh.core.blocks import aws_credentials  # noqa: PLC0415  (imports prefect-aws: slow)

    credentials = aws_credentials(settings)
    if max_pool_connections is not None:
        parameters = credentials.aws_client_parameters
        config = {**(parameters.config or {}), "max_pool_connections": max_pool_connections}
        update = {"aws_client_parameters": parameters.model_copy(update={"config": config})}
        credentials = credentials.model_copy(update=update)
    return credentials.get_s3_client()


def _env_s3_client(settings: StorageSettings, max_pool_connections: int | None) -> S3Client:
    return _cached_s3_client(
        endpoint_url=settings.endpoint_url,
        access_key_id=settings.access_key_id.get_secret_value() if settings.access_key_id else None,
        secret_access_key=(
            settings.secret_access_key.get_secret_value() if settings.secret_access_key else None
        ),
        region=settings.region,
        verify=str(settings.ca_bundle) if settings.ca_bundle else settings.verify_tls,
        max_pool_connections=max_pool_connections,
    )


# One client per distinct configuration, as prefect-aws caches them: a client is
# thread-safe and costs ~50 ms to build, and every chain of a run opens storage.
@lru_cache(maxsize=8)
def _cached_s3_client(
    *,
    endpoint_url: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    region: str,
    verify: bool | str,
    max_pool_connections: int | None,
) -> S3Client:
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    session = boto3.session.Session(
        aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key, region_name=region
    )
    config = Config(max_pool_connections=max_pool_connections) if max_pool_connections else None
    return session.client("s3", endpoint_url=endpoint_url, verify=verify, config=config)


def open_location(settings: StorageSettings, url: str | None = None) -> Location:
    """Turn DWH_STORAGE_URL (or another URL reached with its credentials) into a back-end and prefix."""
    parsed = urlparse(url or settings.url)
    if parsed.scheme == "s3":
        storage = S3Storage(parsed.netloc, s3_client(settings), encryption=settings.encryption_args())
        return Location(storage, parsed.path.strip("/"))
    root = Path(parsed.path)
    root.mkdir(parents=True, exist_ok=True)
    return Location(LocalStorage(root), "")


_DONE = object()


class _Reader(threading.Thread):
    """Reads `handle` into a bounded queue until the end, an error, or `stop`."""

    def __init__(self, handle: IO[bytes], chunk: int, depth: int) -> None:
        super().__init__(name="dwh-read-ahead", daemon=True)
        self.handle, self.chunk = handle, chunk
        self.chunks: queue.Queue[object] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()

    def _offer(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.chunks.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def run(self) -> None:
        try:
            while data := self.handle.read(self.chunk):
                if not self._offer(data):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            self._offer(exc)
            return
        self._offer(_DONE)

    def __iter__(self) -> Iterator[bytes]:
        while (item := self.chunks.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]  # only bytes, errors and _DONE are queued


@contextmanager
def read_ahead(handle: IO[bytes], chunk: int, depth: int = 4) -> Iterator[Iterator[bytes]]:
    """The chunks of `handle`, read by a background thread at most `depth` chunks ahead.

    The load streams a part from storage into COPY: read in line, every network wait
    for the next chunk of an S3 GET was time the database sat idle. Reading ahead
    overlaps the two while holding at most `depth` chunks. A read error is raised to
    the consumer as it was raised; leaving early stops the reader.
    """
    reader = _Reader(handle, chunk, depth)
    reader.start()
    try:
        yield iter(reader)
    finally:
        reader.stop.set()
        reader.join()


@contextmanager
def spool_dir() -> Iterator[Path]:
    """A private scratch directory for parts on their way to storage."""
    with tempfile.TemporaryDirectory(prefix="dwh-parts-") as name:
        yield Path(name)
