"""Where exported JSON is published, and how readers never see a half-written document.

A directory (`file:///dir`) keeps whole versions side by side: a version is written
completely under `versions/<version>/` (documents it takes unchanged from the last one
are hard links, so an incremental run writes only what changed), then the symlink
`current` is swapped to it by renaming a new symlink over it (rename(2) is atomic). A
reader, or a web server serving `current/`, sees one version or the next, never a
mix inside one file, and old versions stay for `keep_versions` publishes.

S3 (`s3://bucket/prefix`) is published in place, at the fixed paths a static viewer
reads: only the documents that changed are uploaded (one PUT each; a PUT replaces an
object atomically, so a reader gets the old document or the new one, never part of
one), documents that left are deleted afterwards, and `manifest.json`, naming the
version, is written last. Nothing is uploaded until every document of the run was
rendered and validated (they wait in a local spool), so a rejected run changes
nothing. Between the first upload and the manifest a reader may meet documents of two
consecutive versions, each whole; the order (documents, then the indexes that list
them, then metadata.json, deletions, manifest) keeps an index from naming a document
that is not there yet.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

MANIFEST = "manifest.json"
VERSIONS = "versions"


class PublishError(RuntimeError):
    """The target refused a write or the switch; the message names the object."""


# A document path is relative, '/'-separated, and every segment is a plain name: not
# empty, "." or "..", and free of '/', backslash, NUL and other control characters.
# Anything else could land outside the version (a local `../`) or make a confusing S3 key.
_PLAIN_NAME = re.compile(r"[^/\\\x00-\x1f\x7f]+")


def is_plain_name(name: str) -> bool:
    """Whether `name` is one path segment that stays where it is put."""
    return name not in {".", ".."} and _PLAIN_NAME.fullmatch(name) is not None


def check_relative(path: str) -> str:
    """`path` itself when it stays inside the version; PublishError naming it otherwise."""
    if not all(is_plain_name(segment) for segment in path.split("/")):
        msg = f"refusing to write {path!r}: a document path must stay inside the version (plain names only)"
        raise PublishError(msg)
    return path


class VersionWriter(Protocol):
    """Writes one new version; nothing of it is visible to readers until `Target.switch`."""

    def write(self, path: str, data: bytes) -> None: ...

    def carry(self, paths: Iterable[str], from_version: str) -> int:
        """Take these documents unchanged from an earlier version; returns how many."""
        ...

    def flush(self) -> None:
        """Wait for every write and carry; raise the first failure."""
        ...

    def sequence_point(self) -> None:
        """What was written so far reaches readers before anything written after."""
        ...

    def remove(self, paths: Iterable[str]) -> None:
        """These documents of the last version are not part of this one."""
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

    def version_root(self, version: str) -> str:
        """Where a version's documents are, relative to the target ("" = in place)."""
        ...

    def switch(self, version: str, manifest: bytes) -> None:
        """Write the version's manifest, then point readers at it (atomically)."""
        ...

    def delete_version(self, version: str) -> None: ...

    def read(self, version: str, path: str) -> bytes:
        """A file of a version (readers, tests and checks)."""
        ...
