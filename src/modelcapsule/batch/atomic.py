"""Output files that appear only once complete: written to a temporary file beside the destination,
fsynced, and renamed over it at the end. An interrupted or failed run removes the temporary file and
leaves whatever was at the destination before (or nothing) in place. ``-`` writes to standard output,
which cannot be made atomic."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["AtomicOutput"]


class AtomicOutput:
    """``with AtomicOutput(path) as fh: ...`` writes ``path`` atomically (``-``: standard output)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self._tmp: Path | None = None
        self._fh: IO[bytes] | None = None

    @property
    def is_stdout(self) -> bool:
        return self.path == "-"

    def __enter__(self) -> IO[bytes]:
        if self.is_stdout:
            return sys.stdout.buffer
        target = Path(self.path)
        if target.is_dir():
            raise IsADirectoryError(f"{target} is a directory; give a file name for the output.")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
        try:  # a signal between here and the return would skip __exit__: clean up ourselves
            self._tmp = Path(tmp)
            self._fh = os.fdopen(fd, "w+b")
        except BaseException:
            os.close(fd)
            Path(tmp).unlink(missing_ok=True)
            raise
        return self._fh

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.is_stdout:
            if exc_type is None:
                sys.stdout.buffer.flush()
            return
        assert self._fh is not None and self._tmp is not None
        try:
            if exc_type is None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                os.chmod(self._tmp, 0o666 & ~_UMASK)  # mkstemp made it 0600; give it a normal file's mode
                os.replace(self._tmp, self.path)
                _fsync_dir(Path(self.path).parent)
        finally:
            if not self._fh.closed:
                self._fh.close()
            self._tmp.unlink(missing_ok=True)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
"""Read once at import: setting and restoring the umask later could race with other threads."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
