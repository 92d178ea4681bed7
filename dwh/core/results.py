"""Where Prefect persists flow and task results: next to the CSVs, in our storage.

With results persisted, a retried parent run finds each finished table's result
(cached per parent run and table) and does not redo it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from prefect.filesystems import LocalFileSystem, WritableFileSystem

from dwh.core.settings import StorageSettings


def result_storage(settings: StorageSettings) -> WritableFileSystem:
    parsed = urlparse(settings.url)
    if settings.scheme == "s3":
        from prefect_aws import S3Bucket  # noqa: PLC0415

        from dwh.core.blocks import aws_credentials  # noqa: PLC0415

        folder = "/".join(p for p in (parsed.path.strip("/"), "prefect-results") if p)
        # A credentials block (DWH_STORAGE_CREDENTIALS_BLOCK) is saved as a reference, so
        # rotating it in the UI also reaches the result storage.
        credentials = aws_credentials(settings)
        return S3Bucket(bucket_name=parsed.netloc, bucket_folder=folder, credentials=credentials)
    return LocalFileSystem(basepath=str(Path(parsed.path) / "prefect-results"))


RESULT_BLOCK_NAME = "dwh-results"


def saved_result_storage(settings: StorageSettings) -> WritableFileSystem:
    """Save (or refresh) the result-storage block and return it, saved.

    Prefect only accepts saved blocks as task result storage; saving with overwrite
    keeps the block in step with the environment on every run (idempotent). Tasks given
    the block itself, not its slug, do not load it from the server again at each run.
    """
    block = result_storage(settings)
    block.save(RESULT_BLOCK_NAME, overwrite=True)
    return block


def ensure_result_storage(settings: StorageSettings) -> str:
    """Save (or refresh) the result-storage block and return its slug."""
    block = saved_result_storage(settings)
    return f"{block.get_block_type_slug()}/{RESULT_BLOCK_NAME}"


def result_storage_slug(settings: StorageSettings) -> str:
    """The slug of the block `saved_result_storage` saves, without touching the server.

    For a decorator: a flow run started by a worker resolves it when it starts, after
    the parent that dispatched it has saved the block.
    """
    if settings.scheme == "s3":
        from prefect_aws import S3Bucket  # noqa: PLC0415

        return f"{S3Bucket.get_block_type_slug()}/{RESULT_BLOCK_NAME}"
    return f"{LocalFileSystem.get_block_type_slug()}/{RESULT_BLOCK_NAME}"
