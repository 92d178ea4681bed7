"""Object storage for CSV parts: a local directory or any S3-compatible API.

Both back-ends give the same guarantees the load depends on: a part becomes visible
under its final key only once complete (temp name + rename locally, a single
completed (multipart) upload on S3), and `move` copies, confirms the copy, and only
then deletes the source, so a crash in between leaves the file in both places, never
in neither (seed §4 Phase D step 8).

An extract writes its parts through `open_write`: on S3 each 8 MB chunk uploads while
COPY fills the next, so storage time hides behind the source database instead of
following it, and no part is spooled to local disk first.
"""

from __future__ import annotations

import base64
import ctypes
import queue
import shutil
import tempfile
import threading
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

from dwh.core.settings import StorageSettings

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, CopySourceTypeDef

# boto3 is imported where S3 is used: it costs ~0.4 s, which commands on file:// storage
# (and `dwh --help`) should not pay.
_PART_BYTES = 16 * 2**20
_WRITE_BUFFER = 1 << 20
# A streamed part is uploaded in chunks of _STREAM_CHUNK (S3's minimum is 5 MB), at
# most _IN_FLIGHT at once: enough to keep the network busy while COPY fills the next
# chunk, few enough that memory stays flat (~(_IN_FLIGHT + 2) chunks per writer).
_STREAM_CHUNK = 8 * 2**20
_IN_FLIGHT = 3
# S3 copies an object of up to 5 GiB in one request; larger ones need a multipart copy.
_SINGLE_COPY_LIMIT = 5 * 2**30


@cache
def _multipart(threshold: int = _PART_BYTES) -> TransferConfig:
    from boto3.s3.transfer import TransferConfig  # noqa: PLC0415

    return TransferConfig(multipart_threshold=threshold, multipart_chunksize=_PART_BYTES)


class StorageError(RuntimeError):
    """Object storage refused or lost something; the message names the key."""


class PartSink(Protocol):
    """One object being written: visible under its key only after `commit`."""

    def write(self, data: bytes | memoryview) -> None: ...

    def commit(self) -> None:
        """Finish writing and make the object visible; raises StorageError naming the key."""
        ...

    def abort(self) -> None:
        """Drop what was written; the key stays as it was. Never raises."""
        ...


class Storage(Protocol):
    """What the engine needs from object storage; keys are '/'-separated paths."""

    def url(self, key: str) -> str: ...

    def open_write(self, key: str) -> PartSink:
        """A sink that streams one object to `key` (the extract's part path)."""
        ...

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

    def open_write(self, key: str) -> PartSink:
        return _FileSink(self.staging_path(key, self.root), self._path(key))

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

    def open_write(self, key: str) -> PartSink:
        return _MultipartSink(self, key)

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
        head = self._head(key)
        return head[0] if head else None

    def _head(self, key: str) -> tuple[int, bool] | None:
        """Size of `key` and whether one CopyObject keeps its checksum; None if there is no `key`.

        True for an object written in one PUT (its ETag has no `-<parts>`) or with a
        FULL_OBJECT checksum; an object uploaded in parts with any other (a composite
        checksum, or none the store reports) is copied part by part.
        """
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        whole = "-" not in str(head.get("ETag", "")) or head.get("ChecksumType") == "FULL_OBJECT"
        return int(head["ContentLength"]), whole

    def move(self, src: str, dst: str) -> None:
        source = self._head(src)
        if source is None:
            if self.size(dst) is not None:
                return  # an earlier attempt finished the move
            msg = f"cannot move {self.url(src)}: no such object"
            raise StorageError(msg)
        size, whole = source
        self._copy(src, dst, in_parts=not whole or size > _SINGLE_COPY_LIMIT)
        if self.size(dst) != size:
            msg = f"copy of {self.url(src)} to {self.url(dst)} differs in size; kept both"
            raise StorageError(msg)
        self.client.delete_object(Bucket=self.bucket, Key=src)

    def _copy(self, src: str, dst: str, *, in_parts: bool) -> None:
        """Server-side copy: one CopyObject, or part by part (composite checksum, over 5 GiB).

        One CopyObject is a single round trip, where the managed copy issues a HEAD, a
        create, a ranged UploadPartCopy per 16 MB and a complete (moved by CopyObject, a
        run's two 195 MB parts took 1.2-2 s on moto, part by part 6-8 s). Parts the
        extract streams have a whole-object checksum, which a CopyObject keeps. An
        object with a composite checksum (a checksum of its parts' checksums, as
        boto3's managed uploads write) is copied part by part, as it was written: a
        single-request copy does not carry that value over faithfully everywhere (moto
        serves it as a whole-object checksum, and every checked GET then fails). So is
        an object over 5 GiB, CopyObject's limit.
        """
        source: CopySourceTypeDef = {"Bucket": self.bucket, "Key": src}
        if not in_parts:
            extra: dict[str, Any] = self.encryption
            self.client.copy_object(CopySource=source, Bucket=self.bucket, Key=dst, **extra)
        else:
            config = _multipart(threshold=1)  # in parts even below 16 MB
            self.client.copy(source, self.bucket, dst, Config=config, ExtraArgs=self.encryption or None)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


class _FileSink:
    """A part written under a hidden temp name next to its target, renamed on commit."""

    def __init__(self, staged: Path, target: Path) -> None:
        self.staged, self.target = staged, target
        self.handle = staged.open("wb", buffering=_WRITE_BUFFER)

    def write(self, data: bytes | memoryview) -> None:
        self.handle.write(data)

    def commit(self) -> None:
        self.handle.close()
        self.staged.replace(self.target)

    def abort(self) -> None:
        self.handle.close()
        self.staged.unlink(missing_ok=True)


@cache
def _return_freed_chunks() -> None:
    """Fix glibc's mmap threshold at 1 MB, so a freed upload chunk goes back to the OS.

    glibc raises the threshold to the size of every mmapped block freed, so after the
    first 8 MB chunk the next ones came from per-thread heaps that are never trimmed:
    an extract then held ~90 MB more than its chunks (measured on 2M rows; ~35 MB with
    the threshold fixed). Elsewhere (musl, macOS) this does nothing.
    """
    m_mmap_threshold = -3  # from glibc's malloc.h
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(m_mmap_threshold, 1 << 20)


class _MultipartSink:
    """Streams one object into an S3 multipart upload while it is being written.

    Each full 8 MB chunk is uploaded in the background (at most `_IN_FLIGHT` at a
    time: the writer waits for a slot, so memory stays flat however big the part),
    and the object appears only when `commit` completes the upload. An object smaller
    than one chunk is a single PUT. A failed chunk is raised at the next write, so a
    dead endpoint stops the extract early; `abort` drops the unfinished upload.

    With boto3's default checksums (`when_supported`) each chunk carries its CRC32 and
    the completion the whole object's, as a FULL_OBJECT checksum: the same value a
    single PUT of the bytes gets, so a one-request CopyObject carries it over as is,
    where a composite "checksum of the parts' checksums" (what boto3's managed uploads
    write) is not carried over faithfully by every store. S3-compatible stores that
    predate these checksums need AWS_REQUEST_CHECKSUM_CALCULATION=when_required for
    boto3 anyway; then no checksum is sent at all.
    """

    def __init__(self, storage: S3Storage, key: str) -> None:
        _return_freed_chunks()
        self.storage, self.key = storage, key
        self.client = storage.client
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._parts: list[Future[CompletedPartTypeDef]] = []
        self._slots = threading.Semaphore(_IN_FLIGHT)
        calculation = getattr(self.client.meta.config, "request_checksum_calculation", None)
        self._checksum: dict[str, Any] = (
            {"ChecksumAlgorithm": "CRC32"} if calculation == "when_supported" else {}
        )
        self._crc = 0  # of every byte sent, in order

    def _fail(self, exc: Exception) -> StorageError:
        return StorageError(f"upload to {self.storage.url(self.key)} failed: {exc}")

    def write(self, data: bytes | memoryview) -> None:
        self._buffer += data
        if len(self._buffer) >= _STREAM_CHUNK:
            self._send()

    def _send(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        for done in self._parts:
            if done.done() and done.exception() is not None:
                done.result()  # the first failed chunk, re-raised as StorageError
        if self._upload_id is None:
            try:
                extra: dict[str, Any] = {**self.storage.encryption, **self._checksum}
                if self._checksum:
                    extra["ChecksumType"] = "FULL_OBJECT"
                bucket, key = self.storage.bucket, self.key
                created = self.client.create_multipart_upload(Bucket=bucket, Key=key, **extra)
            except (BotoCoreError, ClientError) as exc:
                raise self._fail(exc) from exc
            self._upload_id = created["UploadId"]
            self._pool = ThreadPoolExecutor(max_workers=_IN_FLIGHT, thread_name_prefix="dwh-part-upload")
        self._slots.acquire()
        body, self._buffer = bytes(self._buffer), bytearray()
        if self._checksum:
            self._crc = zlib.crc32(body, self._crc)
        assert self._pool is not None  # noqa: S101  (created with the upload id)
        future = self._pool.submit(self._upload, len(self._parts) + 1, body)
        future.add_done_callback(lambda _: self._slots.release())
        self._parts.append(future)

    def _upload(self, number: int, body: bytes) -> CompletedPartTypeDef:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        assert self._upload_id is not None  # noqa: S101
        try:
            response = self.client.upload_part(
                Bucket=self.storage.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
                **self._checksum,
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc) from exc
        part: CompletedPartTypeDef = {"ETag": response["ETag"], "PartNumber": number}
        if "ChecksumCRC32" in response:
            part["ChecksumCRC32"] = response["ChecksumCRC32"]
        return part

    def commit(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            self._complete()
        except (BotoCoreError, ClientError) as exc:
            self.abort()
            raise self._fail(exc) from exc
        except BaseException:
            self.abort()
            raise
        finally:
            self._buffer = bytearray()
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def _complete(self) -> None:
        bucket, key = self.storage.bucket, self.key
        if self._upload_id is None:
            body = bytes(self._buffer)
            extra: dict[str, Any] = self.storage.encryption
            self.client.put_object(Bucket=bucket, Key=key, Body=body, **extra)
            return
        if self._buffer:
            self._send()
        parts = [future.result() for future in self._parts]
        whole: dict[str, Any] = {}
        if self._checksum:
            crc32 = base64.b64encode(self._crc.to_bytes(4, "big")).decode()
            whole = {"ChecksumType": "FULL_OBJECT", "ChecksumCRC32": crc32}
        self.client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=self._upload_id, MultipartUpload={"Parts": parts}, **whole
        )
        self._upload_id = None

    def abort(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        self._buffer = bytearray()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        # Storage unreachable: the upload stays invisible, and the bucket's lifecycle rule
        # for incomplete multipart uploads (docs/first-deployment.md) drops it later.
        with suppress(BotoCoreError, ClientError):
            self.client.abort_multipart_upload(Bucket=self.storage.bucket, Key=self.key, UploadId=upload_id)


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
