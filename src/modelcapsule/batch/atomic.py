"""Output files that appear only once complete (see :mod:`modelcapsule.core.atomic`): an interrupted or
failed run leaves whatever was at the destination before (or nothing) in place. ``-`` writes to standard
output, which cannot be made atomic."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType
from typing import IO

from ..core.atomic import PLAIN_MODE, AtomicFile

__all__ = ["AtomicOutput"]


class AtomicOutput:
    """``with AtomicOutput(path) as fh: ...`` writes ``path`` atomically with a plain file's mode
    (``-``: standard output)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self._file: AtomicFile | None = None

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
        self._file = AtomicFile(target, mode=PLAIN_MODE)
        return self._file.__enter__()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            self._file.__exit__(exc_type, exc, tb)
        elif exc_type is None:
            sys.stdout.buffer.flush()
