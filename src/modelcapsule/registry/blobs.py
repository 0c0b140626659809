"""Content-addressed capsule files: each stored once under its SHA-256 (``sha256/ab/abcdef…``).

A blob is copied into ``tmp/`` (hashed on the way, then fsynced) and renamed into place only once every
check on it passed; the rename is atomic, so a reader sees a whole blob or none. A writer killed before
the rename leaves a temp file (removed by ``gc``); one killed after it leaves a blob no row names
(reported by ``check``, removed by ``gc``), never a row without its blob.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from ..core.atomic import fsync_dir

__all__ = ["CHUNK", "BlobSink", "BlobStore", "StagedBlob", "TooLargeError", "hash_file"]

CHUNK = 1 << 20
ALGORITHM = "sha256"


def hash_file(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return f"{ALGORITHM}:{digest.hexdigest()}"


@dataclass(frozen=True)
class StagedBlob:
    """A fully written, fsynced temp copy waiting to be checked and committed (or discarded)."""

    path: Path
    digest: str
    size: int


class TooLargeError(ValueError):
    """A blob being staged passed its size limit (a 413 for the REST API)."""


class BlobSink:
    """A temp file being filled with a blob's bytes, counted and hashed on the way.

    ``with store.sink(max_bytes=...) as sink: sink.write(chunk)...; staged = sink.finish()``: the bytes are
    fsynced by :meth:`finish`; leaving the block by an exception (a chunk past ``max_bytes`` raises
    :class:`TooLargeError`) or without finishing removes the temp file.
    """

    def __init__(self, tmp_dir: Path, *, max_bytes: int | None = None, prefix: str = "blob-") -> None:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".capsule", dir=tmp_dir)
        self.path = Path(name)
        self.max_bytes = max_bytes
        self.size = 0
        self._digest = hashlib.sha256()
        self._out = os.fdopen(fd, "wb")
        self._staged: StagedBlob | None = None

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise TooLargeError(f"the capsule is larger than the limit of {self.max_bytes:,} bytes")
        self._digest.update(chunk)
        self._out.write(chunk)

    def finish(self) -> StagedBlob:
        """Flush and fsync the bytes; the staged blob, ready to check and commit (or discard)."""
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        self._staged = StagedBlob(self.path, f"{ALGORITHM}:{self._digest.hexdigest()}", self.size)
        return self._staged

    def __enter__(self) -> BlobSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._out.close()
        if exc_type is not None or self._staged is None:
            self.path.unlink(missing_ok=True)


class BlobStore:
    """The blob directory of a registry."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        """Where the blob of ``digest`` lives (whether or not it exists)."""
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm != ALGORITHM or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
            raise ValueError(f"{digest!r} is not a 'sha256:<64 hex digits>' digest")
        return self.root / ALGORITHM / hexdigest[:2] / hexdigest

    def sink(self, *, max_bytes: int | None = None, prefix: str = "blob-") -> BlobSink:
        """A new temp file under ``tmp/`` to fill chunk by chunk (see :class:`BlobSink`)."""
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        return BlobSink(tmp_dir, max_bytes=max_bytes, prefix=prefix)

    def stage_stream(self, source: BinaryIO, *, max_bytes: int | None = None) -> StagedBlob:
        """Copy ``source`` into a temp file, hashing it; raise :class:`TooLargeError` past ``max_bytes``."""
        with self.sink(max_bytes=max_bytes) as sink:
            while chunk := source.read(CHUNK):
                sink.write(chunk)
            return sink.finish()

    def stage_file(self, path: str | os.PathLike[str]) -> StagedBlob:
        with open(path, "rb") as fh:
            return self.stage_stream(fh)

    def commit(self, staged: StagedBlob) -> Path:
        """Rename a staged blob into place (atomic); a blob already there with this digest is kept."""
        final = self.path(staged.digest)
        if final.exists():
            staged.path.unlink(missing_ok=True)
            os.utime(final)  # fresh again: gc's grace period now covers the row about to name it
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(staged.path, 0o444)
        os.replace(staged.path, final)
        fsync_dir(final.parent)
        return final

    @staticmethod
    def discard(staged: StagedBlob) -> None:
        staged.path.unlink(missing_ok=True)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def check(self, digest: str) -> str | None:
        """None when the blob exists and hashes to ``digest``, else what is wrong."""
        path = self.path(digest)
        if not path.is_file():
            return f"blob {digest} is missing ({path})"
        actual = hash_file(path)
        return None if actual == digest else f"blob {digest} hashes to {actual}: it was altered or corrupted"

    def age_s(self, digest: str) -> float:
        """Seconds since the blob was last written or re-committed."""
        return time.time() - self.path(digest).stat().st_mtime

    def digests(self) -> Iterator[str]:
        """Every stored blob's digest (by its file name)."""
        base = self.root / ALGORITHM
        if not base.is_dir():
            return
        for sub in sorted(base.iterdir()):
            if sub.is_dir():
                for blob in sorted(sub.iterdir()):
                    yield f"{ALGORITHM}:{blob.name}"

    def remove(self, digests: Iterable[str]) -> int:
        removed = 0
        for digest in digests:
            path = self.path(digest)
            if path.exists():
                path.unlink()
                removed += 1
        return removed

    def stale_temps(self, older_than_s: float = 3600.0) -> list[Path]:
        """Temp files of writers that died (older than ``older_than_s``, so live writers are left alone)."""
        tmp_dir = self.root / "tmp"
        if not tmp_dir.is_dir():
            return []
        cutoff = time.time() - older_than_s
        return [p for p in tmp_dir.iterdir() if p.is_file() and p.stat().st_mtime < cutoff]
