"""Byte streams for the readers: open a path (gzip looked through) or standard input, count the bytes
read for the progress bar, and replay a peeked prefix (the CSV header, the first JSON line) so a
non-seekable stream can be inspected before it is read for real."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import IO

__all__ = ["CountingStream", "open_binary"]


class CountingStream(io.RawIOBase):
    """A read-only stream over ``inner`` that starts with ``prefix`` and counts the bytes it delivers
    from the underlying file (``counted``: the compressed size for gzip input)."""

    def __init__(self, inner: IO[bytes], counter: CountingStream | None = None, *, owned: bool = True) -> None:
        super().__init__()
        self._inner = inner
        self._owned = owned
        self._prefix = b""
        self._counter = counter
        self.count = 0

    def readable(self) -> bool:
        return True

    def unread(self, data: bytes) -> None:
        """Put ``data`` back in front of the stream (used after peeking at a header)."""
        self._prefix = data + self._prefix

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        # Fill the whole buffer unless the input ends: some readers take a short read for the end.
        view = memoryview(buffer).cast("B")
        filled = 0
        if self._prefix:
            filled = min(len(view), len(self._prefix))
            view[:filled] = self._prefix[:filled]
            self._prefix = self._prefix[filled:]
        while filled < len(view):
            data = self._inner.read(len(view) - filled)
            if not data:
                break
            view[filled : filled + len(data)] = data
            filled += len(data)
            self.count += len(data)
        return filled

    @property
    def counted(self) -> int:
        return self._counter.count if self._counter is not None else self.count

    def close(self) -> None:
        if not self.closed and self._owned:
            self._inner.close()
        super().close()


def open_binary(source: Path | IO[bytes]) -> tuple[CountingStream, int | None]:
    """An input stream over ``source`` and its size on disk when known (for progress)."""
    if not isinstance(source, Path):
        return CountingStream(source, owned=False), None  # standard input stays open for the caller
    raw = CountingStream(open(source, "rb"))  # noqa: SIM115 - owned by the returned stream
    size = source.stat().st_size
    if source.suffix.lower() == ".gz":
        unzipped: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
        return CountingStream(unzipped, counter=raw), size
    return raw, size


def read_prefix_line(stream: CountingStream, limit: int = 1 << 20) -> bytes:
    """Read up to and including the first newline (at most ``limit`` bytes) and push it back."""
    parts: list[bytes] = []
    total = 0
    while total < limit:
        block = stream.read(min(65536, limit - total))
        if not block:
            break
        parts.append(block)
        total += len(block)
        if b"\n" in block:
            break
    data = b"".join(parts)
    stream.unread(data)
    end = data.find(b"\n")
    return data if end < 0 else data[: end + 1]
