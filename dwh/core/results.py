"""Where Prefect persists flow and task results: next to the CSVs, in our storage.

With results persisted, a retried parent run finds each finished table's result
(cached per parent run and table) and does not redo it.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast
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
    """The result-storage block as this environment describes it, saved on the server.

    Prefect only accepts saved blocks as task result storage. Every run makes sure the
    saved block matches the environment, but saves only when it differs: reading it back
    costs one round trip (~0.05 s), saving an S3 bucket block with its credentials
    ~0.8 s, paid by every run. Tasks given the block itself, not its slug, do not load
    it from the server again at each run.
    """
    block = result_storage(settings)
    try:
        saved = cast("WritableFileSystem", type(block).load(RESULT_BLOCK_NAME))
    except ValueError:  # none yet, or saved under another block type
        saved = None
    if saved is not None and _fields(saved.model_dump()) == _fields(block.model_dump()):
        return saved
    block.save(RESULT_BLOCK_NAME, overwrite=True)
    return block


def _fields(dumped: object) -> object:
    """A block's values without what saving adds (`_block_document_id`, `_is_anonymous`…)."""
    if isinstance(dumped, dict):
        return {k: _fields(v) for k, v in dumped.items() if not str(k).startswith("_")}
    return dumped


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
