"""NPY: one numpy array, rows along the first axis.

Reading parses the header and then reads each chunk with plain file reads, so memory holds one chunk
(memory-mapping would be as fast, but every page touched would stay in the process's resident set until
the end). Fortran-ordered files are memory-mapped instead. Writing puts a header with room for any row
count, appends each chunk's bytes, and rewrites the header with the final shape at the end (the header
layout follows the NPY format specification in ``numpy.lib.format``'s documentation).
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
import pyarrow as pa

from ..core.npy import NpyError, read_npy_header
from .errors import BatchUsageError, InputFileError
from .table import Chunk, ChunkReader, ChunkWriter, ColumnKind, Source, TableFormat

__all__ = ["NpyFormat"]

_MAGIC = b"\x93NUMPY"
_HEADER_BYTES = 256
"""Room reserved for the written header: a dict literal with the dtype and shape, padded with spaces."""


class NpyReader:
    """Reads an NPY file's rows in chunks of ``batch_rows``."""

    kind: ColumnKind = "array"
    columns: tuple[str, ...] = ()

    def __init__(self, source: Source, name: str, batch_rows: int) -> None:
        if not isinstance(source, Path):
            raise BatchUsageError("NPY cannot be read from standard input; give a file path.")
        self.name = name
        self.batch_rows = batch_rows
        self.types: dict[str, pa.DataType] = {}
        self._fh = open(source, "rb")  # noqa: SIM115 - closed in close()
        try:
            header = read_npy_header(self._fh)  # the same strict header reader as the golden sample's
        except NpyError as exc:
            self._fh.close()
            if exc.holds_objects:
                raise InputFileError(
                    f"{name} holds Python objects ({exc}); reading it would unpickle them, which can run "
                    "code. Save the array with a numeric or fixed-width string dtype."
                ) from None
            raise InputFileError(f"{name} is not a readable NPY file: {exc}") from None
        shape, fortran, dtype = header.shape, header.fortran, header.dtype
        if not shape:
            self._fh.close()
            raise InputFileError(f"{name} holds a scalar; batch scoring needs rows along the first axis.")
        self.array_shape: tuple[int, ...] = tuple(shape)
        self.array_dtype: np.dtype[Any] = dtype
        self.total_rows: int = int(shape[0])
        self.total_bytes: int = source.stat().st_size
        self._fortran = bool(fortran)
        self._path = source
        self._offset = self._fh.tell()
        expected = self._offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if self.total_bytes < expected:
            self._fh.close()
            raise InputFileError(
                f"{name} is truncated: its header promises shape {tuple(shape)} ({expected:,} bytes) but the "
                f"file has {self.total_bytes:,} bytes."
            )

    def bytes_read(self) -> int:
        return 0  # progress counts rows: total_rows is known

    def chunks(self, columns: tuple[str, ...]) -> Generator[Chunk, None, None]:
        row_shape = self.array_shape[1:]
        per_row = int(np.prod(row_shape, dtype=np.int64))
        mapped = None
        if self._fortran:
            mapped = np.load(self._path, mmap_mode="r", allow_pickle=False)
        for start in range(0, self.total_rows, self.batch_rows):
            n = min(self.batch_rows, self.total_rows - start)
            if mapped is not None:
                block = np.array(mapped[start : start + n])
            else:
                block = np.fromfile(self._fh, dtype=self.array_dtype, count=n * per_row).reshape(
                    (n, *row_shape)
                )
            rows = np.arange(start + 1, start + n + 1, dtype=np.int64)
            yield Chunk(rows=rows, array=block)

    def close(self) -> None:
        self._fh.close()


class NpyWriter:
    """Writes one prediction array to an NPY file chunk by chunk."""

    def __init__(self, sink: IO[bytes], name: str) -> None:
        self._sink = sink
        self.name = name
        self._dtype: np.dtype[Any] | None = None
        self._row_shape: tuple[int, ...] = ()
        self._rows = 0
        self._start = 0

    def write(self, data: pa.Table | np.ndarray[Any, Any]) -> None:
        if not isinstance(data, np.ndarray):
            raise TypeError("the NPY writer takes numpy arrays")
        if self._dtype is None:
            if data.dtype.hasobject:
                raise BatchUsageError(
                    f"the predictions are Python objects ({data.dtype}), which NPY can only store pickled; "
                    "write CSV, Parquet or JSON Lines instead."
                )
            self._dtype, self._row_shape = data.dtype, tuple(data.shape[1:])
            self._start = self._sink.tell()
            self._sink.write(_header(self._dtype, (0, *self._row_shape)))
        data = np.ascontiguousarray(data, dtype=self._dtype)
        if tuple(data.shape[1:]) != self._row_shape:
            raise ValueError(
                f"prediction shape changed from {self._row_shape} to {data.shape[1:]} between chunks"
            )
        self._sink.write(data.tobytes())
        self._rows += len(data)

    def close(self) -> None:
        if self._dtype is None:  # no rows at all: an empty float array
            self._dtype = np.dtype(np.float64)
            self._start = self._sink.tell()
            self._sink.write(_header(self._dtype, (0,)))
        end = self._sink.tell()
        self._sink.seek(self._start)
        self._sink.write(_header(self._dtype, (self._rows, *self._row_shape)))
        self._sink.seek(end)


def _header(dtype: np.dtype[Any], shape: tuple[int, ...]) -> bytes:
    """Version 1.0 header of a fixed ``_HEADER_BYTES`` length, so it can be rewritten in place."""
    literal = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    room = _HEADER_BYTES - len(_MAGIC) - 2 - 2  # magic, version, uint16 length
    body = literal.encode("latin1")
    if len(body) + 1 > room:
        raise BatchUsageError(f"predictions of dtype {dtype} and shape {shape} need a larger NPY header")
    body = body + b" " * (room - len(body) - 1) + b"\n"
    return _MAGIC + bytes([1, 0]) + len(body).to_bytes(2, "little") + body


class NpyFormat:
    """NumPy's ``.npy`` array file; needs a real file on both ends."""

    name: ClassVar[str] = "npy"
    extensions: ClassVar[tuple[str, ...]] = (".npy",)
    tabular: ClassVar[bool] = False
    streams: ClassVar[bool] = False

    def open_reader(self, source: Source, name: str, batch_rows: int) -> ChunkReader:
        return NpyReader(source, name, batch_rows)

    def open_writer(self, sink: IO[bytes], name: str) -> ChunkWriter:
        return NpyWriter(sink, name)


FORMATS: tuple[TableFormat, ...] = (NpyFormat(),)
