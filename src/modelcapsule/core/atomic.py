"""Files that appear whole or not at all.

Bytes go to a temporary sibling of the destination (same directory, so the rename stays on one file
system), which is flushed, fsynced, given its mode and renamed over the destination; then the directory
is fsynced so the rename itself survives a power cut. A crash or an exception before the rename removes
the temporary file and leaves whatever was at the destination (or nothing) in place: a reader sees the
old file or the new one, never a half-written mix.

The temporary file is made by :func:`tempfile.mkstemp`, readable by its owner only (0600) from its first
byte; it keeps that mode unless ``mode`` says otherwise. :data:`PLAIN_MODE` is what ``open()`` would give
a new file (0666 minus the umask).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

__all__ = ["OWNER_ONLY", "PLAIN_DIR_MODE", "PLAIN_MODE", "AtomicFile", "fsync_dir", "write_atomic"]

OWNER_ONLY = 0o600
"""Read and write for the owner only: the mode the temporary file is created with."""


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
PLAIN_MODE = 0o666 & ~_UMASK
"""The mode ``open()`` gives a new file. The umask is read once at import: setting and restoring it later
could race with other threads."""
PLAIN_DIR_MODE = 0o777 & ~_UMASK
"""The mode ``mkdir()`` gives a new folder."""


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (a rename or a new file in it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFile:
    """``with AtomicFile(path) as fh: fh.write(...)`` writes ``path`` atomically.

    The destination changes only when the block exits without an exception; ``mode`` sets its permission
    bits (default: owner only, as created). The parent directory must exist.
    """

    def __init__(self, path: str | os.PathLike[str], *, mode: int = OWNER_ONLY) -> None:
        self.path = Path(path)
        self.mode = mode
        self._tmp: Path | None = None
        self._fh: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.tmp-", dir=self.path.parent)
        try:  # a signal between here and the return would skip __exit__: clean up ourselves
            self._tmp = Path(tmp)
            if self.mode != OWNER_ONLY:
                os.fchmod(fd, self.mode)
            self._fh = os.fdopen(fd, "w+b")
        except BaseException:
            os.close(fd)
            Path(tmp).unlink(missing_ok=True)
            raise
        return self._fh

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fh is None or self._tmp is None:
            raise RuntimeError("AtomicFile exited without being entered")
        try:
            if exc_type is None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                os.replace(self._tmp, self.path)
                fsync_dir(self.path.parent)
        finally:
            if not self._fh.closed:
                self._fh.close()
            self._tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike[str], data: bytes | memoryview, *, mode: int = OWNER_ONLY) -> None:
    """Write ``data`` to ``path`` atomically (see :class:`AtomicFile`)."""
    with AtomicFile(path, mode=mode) as fh:
        fh.write(data)
