"""Parts stream into storage as COPY writes them: on S3 a multipart upload fed chunk by chunk.

Against the session's moto server over HTTP: what an extract relies on is that a part is
invisible until `commit`, whole after it, and that a failed or abandoned part leaves no
object under its key.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dwh.ingest.storage import LocalStorage, PartSink, S3Storage, StorageError
from tests.conftest import Stack
from tests.outages import TcpCut, endpoint_port

CHUNK = 8 * 2**20  # _STREAM_CHUNK of dwh/ingest/storage.py


@pytest.fixture
def s3(stack: Stack) -> Iterator[S3Storage]:
    storage = S3Storage("dwh-dev", stack.s3_client())
    yield storage
    for key in storage.list(f"tests/sink-{os.getpid()}"):
        storage.delete(key)


def _key() -> str:
    return f"tests/sink-{os.getpid()}/{uuid.uuid4().hex}/part.csv"


def _rows(total: int) -> Iterator[bytes]:
    """CSV-like rows of varying length, as CopyData messages arrive, `total` bytes in all."""
    n, sent = 0, 0
    while sent < total:
        row = f"{n},{'x' * (n % 97)},2026-12-04 18:00:00+00\n".encode()[: total - sent]
        sent += len(row)
        n += 1
        yield row


def _write(sink: PartSink, total: int) -> bytes:
    written = bytearray()
    for row in _rows(total):
        sink.write(memoryview(row))
        written += row
    return bytes(written)


def _uploads(storage: S3Storage, key: str) -> list[str]:
    listed = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=key)
    return [u["UploadId"] for u in listed.get("Uploads", [])]


def _read(storage: S3Storage | LocalStorage, key: str) -> bytes:
    with storage.open_read(key) as body:
        return body.read()


def _calls(storage: S3Storage) -> list[str]:
    seen: list[str] = []
    storage.client.meta.events.register("before-call.s3.*", lambda model, **_: seen.append(model.name))
    return seen


def test_a_large_part_streams_in_chunks_and_appears_whole_only_on_commit(s3: S3Storage) -> None:
    key = _key()
    calls = _calls(s3)
    sink = s3.open_write(key)

    data = _write(sink, 2 * CHUNK + 12345)

    assert s3.size(key) is None, "a part must not be visible before it is complete"
    assert calls.count("UploadPart") >= 1, "chunks upload while the part is still being written"
    sink.commit()
    assert _read(s3, key) == data  # boto3 checks the object's CRC32 on the way
    assert calls.count("UploadPart") == 3
    assert calls.count("CompleteMultipartUpload") == 1
    assert _uploads(s3, key) == []
    head = s3.client.head_object(Bucket=s3.bucket, Key=key, ChecksumMode="ENABLED")
    assert head.get("ChecksumType") == "FULL_OBJECT", "the whole object's CRC32, as one PUT would have"


def test_a_part_smaller_than_one_chunk_is_a_single_put(s3: S3Storage) -> None:
    key = _key()
    calls = _calls(s3)
    sink = s3.open_write(key)
    data = _write(sink, 1000)
    sink.commit()

    assert calls == ["PutObject"]
    assert _read(s3, key) == data


def test_an_empty_part_commits_as_an_empty_object(s3: S3Storage) -> None:
    key = _key()
    s3.open_write(key).commit()
    assert s3.size(key) == 0


def test_a_streamed_part_and_its_moved_copy_are_encrypted_as_settings_ask(s3: S3Storage) -> None:
    kms = S3Storage(s3.bucket, s3.client, {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/dwh"})
    key = _key()
    sink = kms.open_write(key)
    data = _write(sink, CHUNK + 10)  # a multipart upload: the encryption is set when it is created
    sink.commit()
    moved = key.replace("/part.csv", "/processed/part.csv")
    kms.move(key, moved)

    assert kms.size(key) is None
    assert _read(kms, moved) == data
    head = kms.client.head_object(Bucket=kms.bucket, Key=moved)
    assert head.get("ServerSideEncryption") == "aws:kms"
    assert "alias/dwh" in head.get("SSEKMSKeyId", "")


def test_an_object_with_a_composite_checksum_moves_part_by_part_and_reads_back(
    s3: S3Storage, tmp_path: Path
) -> None:
    """boto3's managed upload (backups, imported CSV, parts of earlier versions) writes a
    checksum of the parts' checksums; a one-request copy would not keep it valid."""
    key = _key()
    data = os.urandom(2 * 16 * 2**20 + 5)
    staged = tmp_path / "part.csv"
    staged.write_bytes(data)
    s3.publish(staged, key)  # a managed multipart upload, 16 MB parts
    head = s3.client.head_object(Bucket=s3.bucket, Key=key, ChecksumMode="ENABLED")
    assert "-" in head["ETag"]
    assert head.get("ChecksumType") != "FULL_OBJECT"
    calls = _calls(s3)
    moved = key.replace("/part.csv", "/processed/part.csv")
    s3.move(key, moved)

    assert "UploadPartCopy" in calls
    assert "CopyObject" not in calls
    assert s3.size(key) is None
    assert _read(s3, moved) == data


def test_an_aborted_part_leaves_no_object_and_no_upload(s3: S3Storage) -> None:
    key = _key()
    sink = s3.open_write(key)
    _write(sink, CHUNK + 10)
    assert len(_uploads(s3, key)) == 1

    sink.abort()

    assert s3.size(key) is None
    assert _uploads(s3, key) == []


def test_storage_lost_mid_part_fails_naming_the_key_and_publishes_nothing(
    stack: Stack, s3: S3Storage
) -> None:
    cut = TcpCut(endpoint_port(stack.env["AWS_ENDPOINT_URL"]))
    try:
        through = S3Storage("dwh-dev", stack.s3_client(cut.url, retries={"max_attempts": 1}))
        key = _key()
        sink = through.open_write(key)
        _write(sink, CHUNK + 10)  # the first chunk is on its way
        cut.cut()

        def finish() -> None:
            _write(sink, 3 * CHUNK)  # a later write sees the failed chunk, or commit does
            sink.commit()

        with pytest.raises(StorageError, match=rf"upload to s3://dwh-dev/{key} failed"):
            finish()
    finally:
        cut.restore()
    assert s3.size(key) is None
    # The abort could not reach storage either: the upload stays invisible until the
    # bucket's lifecycle rule drops it; abort it here so the bucket stays clean.
    for upload_id in _uploads(s3, key):
        s3.client.abort_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=upload_id)


def test_a_local_part_is_hidden_until_commit_and_gone_after_abort(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    kept, dropped = "fleet/exports/t/kept.csv", "fleet/exports/t/dropped.csv"

    sink = storage.open_write(kept)
    data = _write(sink, 3000)
    assert storage.list("fleet") == []
    sink.commit()
    assert storage.list("fleet") == [kept]
    assert _read(storage, kept) == data

    other = storage.open_write(dropped)
    _write(other, 3000)
    other.abort()
    assert storage.list("fleet") == [kept]
    assert sorted(p.name for p in (tmp_path / "fleet/exports/t").iterdir()) == ["kept.csv"]
