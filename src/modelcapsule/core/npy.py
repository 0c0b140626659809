"""The one strict reader of NPY headers and arrays, shared by the golden sample and batch scoring.

``numpy.load`` trusts the header: a hundred-byte file that claims a shape of ten billion rows makes it
allocate the whole array before it notices the data is missing (``MemoryError``, or gigabytes of
address space). Here the header is parsed first, its dtype must be plain data (no Python objects, no
structured records), and the element count must agree with the bytes actually present before any array
is built, so no allocation is ever sized by the header alone.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

__all__ = ["PLAIN_KINDS", "NpyError", "NpyHeader", "array_from_npy", "read_npy_header"]

PLAIN_KINDS = frozenset("biufcUSMm")
"""dtype kinds an NPY file may hold here: booleans, numbers, fixed-width text and bytes, dates and times."""


class NpyError(ValueError):
    """An NPY file or member that is malformed, holds objects, or does not match its own header."""

    def __init__(self, message: str, *, holds_objects: bool = False) -> None:
        super().__init__(message)
        self.holds_objects = holds_objects


@dataclass(frozen=True)
class NpyHeader:
    """What an NPY header declares, and where the data starts."""

    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype[Any]
    offset: int

    @property
    def count(self) -> int:
        """Number of elements the header promises."""
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize


def read_npy_header(fh: IO[bytes]) -> NpyHeader:
    """Parse the header at the current position of ``fh``; raises :class:`NpyError` for anything but an
    array of plain data with a sane shape."""
    start = fh.tell()
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise NpyError(f"unknown NPY version {version}")
    except NpyError:
        raise
    except (ValueError, OSError, SyntaxError, TypeError, EOFError, OverflowError, RecursionError,
            MemoryError) as exc:
        raise NpyError(f"unreadable NPY header ({type(exc).__name__})") from exc
    if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.kind not in PLAIN_KINDS or dtype.fields:
        raise NpyError(f"dtype {dtype} is not plain data (numbers, booleans or fixed-width text)",
                       holds_objects=isinstance(dtype, np.dtype) and dtype.hasobject)
    if dtype.itemsize == 0 and dtype.kind in "US":
        raise NpyError(f"dtype {dtype} has no width")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape) or len(shape) > 32:
        raise NpyError(f"malformed shape {shape!r}")
    return NpyHeader(tuple(int(d) for d in shape), bool(fortran), dtype, fh.tell() - start)


def array_from_npy(data: bytes | bytearray | memoryview, *, max_bytes: int | None = None) -> np.ndarray[Any, Any]:
    """The array stored in NPY bytes ``data`` (a copy of its own, made only once the header was found to
    describe exactly the bytes that follow). Raises :class:`NpyError` when the header lies about the data
    or the array is larger than ``max_bytes``."""
    view = memoryview(data).cast("B")
    header = read_npy_header(io.BytesIO(view[:65536 + 12]))  # headers are at most 64 KiB
    if max_bytes is not None and header.nbytes > max_bytes:
        raise NpyError(f"the array needs {header.nbytes:,} bytes, more than the {max_bytes:,} allowed")
    body = view[header.offset:]
    if len(body) != header.nbytes:
        raise NpyError(
            f"the header promises shape {header.shape} of {header.dtype} ({header.nbytes:,} bytes) but "
            f"{len(body):,} bytes follow"
        )
    flat = np.frombuffer(body, dtype=header.dtype, count=header.count)
    return np.array(flat.reshape(header.shape, order="F" if header.fortran else "C"), order="K")
