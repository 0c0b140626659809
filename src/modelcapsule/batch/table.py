"""The shapes every batch file format implements: a reader that yields chunks of rows and a writer that
takes chunks of predictions. One module per format (``csv``, ``parquet``, ``jsonl``, ``npy``) fills them
in; :mod:`modelcapsule.batch.registry` maps names and extensions to formats.

Readers never hold more than one chunk (plus the library's read-ahead) in memory, and writers append as
chunks arrive, so a file larger than memory streams through.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

__all__ = ["Chunk", "ChunkReader", "ChunkWriter", "ColumnKind", "Reject", "Source", "TableFormat"]

ColumnKind = Literal["text", "typed", "json", "array"]
"""How a reader's values arrive: ``text`` (CSV: strings to parse), ``typed`` (Parquet: Arrow columns of
known types), ``json`` (JSON Lines: Python values per row), ``array`` (NPY: one n-D numpy array)."""

Source = Path | IO[bytes]
"""A file path, or an open binary stream (standard input) for formats that can stream."""


@dataclass(frozen=True)
class Reject:
    """One row set aside: its 1-based row number, why, and its input values (for the rejects file)."""

    row: int
    reason: str
    values: Mapping[str, Any] | str = field(default_factory=dict)


@dataclass
class Chunk:
    """A run of input rows.

    ``rows`` holds each row's 1-based number in the input (the first data row is row 1; a CSV header is
    not counted). Tabular readers fill ``columns`` (Arrow arrays for ``text``/``typed`` readers, Python
    lists for ``json``); the NPY reader fills ``array``. ``rejected`` lists rows the reader itself could
    not parse (a malformed JSON line), already removed from the chunk.
    """

    rows: np.ndarray[Any, np.dtype[np.int64]]
    columns: dict[str, pa.Array | pa.ChunkedArray | list[Any]] = field(default_factory=dict)
    array: np.ndarray[Any, Any] | None = None
    rejected: list[Reject] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)


@runtime_checkable
class ChunkReader(Protocol):
    """An open input file, read chunk by chunk."""

    @property
    def name(self) -> str:
        """How messages name the input (its path, or ``<stdin>``)."""
        ...

    @property
    def kind(self) -> ColumnKind: ...

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names in file order (empty for NPY)."""
        ...

    @property
    def types(self) -> Mapping[str, pa.DataType]:
        """Arrow type of each column, for ``typed`` readers only (checked against the signature up front)."""
        ...

    @property
    def total_rows(self) -> int | None:
        """Rows in the file when known without reading it (Parquet metadata, NPY header)."""
        ...

    @property
    def total_bytes(self) -> int | None: ...

    @property
    def array_shape(self) -> tuple[int, ...] | None:
        """Shape of the whole array, for ``array`` readers only."""
        ...

    @property
    def array_dtype(self) -> np.dtype[Any] | None: ...

    def bytes_read(self) -> int:
        """How far into the file reading has come (for progress when ``total_rows`` is unknown)."""
        ...

    def chunks(self, columns: tuple[str, ...]) -> Generator[Chunk, None, None]:
        """Chunks of at most the batch size, holding only ``columns`` (all of them for NPY)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ChunkWriter(Protocol):
    """An output being written chunk by chunk to an open binary file."""

    def write(self, data: pa.Table | np.ndarray[Any, Any]) -> None:
        """Append one chunk: an Arrow table for tabular formats, the prediction array for NPY."""
        ...

    def close(self) -> None:
        """Finish the file (footer, final header). The caller fsyncs and renames it."""
        ...


@runtime_checkable
class TableFormat(Protocol):
    """One file format for batch scoring.

    ``tabular`` formats hold named columns (CSV, Parquet, JSON Lines); NPY holds one array. ``streams``
    is True when the format can be read from standard input and written to standard output (``-``).
    """

    name: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]]
    tabular: ClassVar[bool]
    streams: ClassVar[bool]

    def open_reader(self, source: Source, name: str, batch_rows: int) -> ChunkReader: ...

    def open_writer(self, sink: IO[bytes], name: str) -> ChunkWriter: ...
