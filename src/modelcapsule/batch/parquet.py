"""Parquet through ``pyarrow.parquet``: batches from ``ParquetFile.iter_batches``, one row group at a
time (memory is bounded by the batch plus one row group's compressed bytes), and a ``ParquetWriter``
that appends one row group per chunk."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import BatchUsageError, InputFileError
from .table import Chunk, ChunkReader, ChunkWriter, ColumnKind, Source, TableFormat

__all__ = ["ParquetFormat"]


class ParquetReader:
    """Reads a Parquet file in batches of ``batch_rows`` rows, only the columns asked for."""

    kind: ColumnKind = "typed"
    array_shape = None
    array_dtype = None

    def __init__(self, source: Source, name: str, batch_rows: int) -> None:
        if not isinstance(source, Path):
            raise BatchUsageError("Parquet cannot be read from standard input; give a file path.")
        self.name = name
        self.batch_rows = batch_rows
        try:
            self._file = pq.ParquetFile(source, pre_buffer=True)
            schema = self._file.schema_arrow
        except (pa.ArrowException, OSError) as exc:
            raise InputFileError(f"{name} is not a readable Parquet file: {_first_line(exc)}") from None
        self.columns = tuple(schema.names)
        if len(set(self.columns)) != len(self.columns):
            dup = next(c for c in self.columns if self.columns.count(c) > 1)
            raise InputFileError(f"{name} has two columns named {dup!r}; column names must be unique.")
        self.types = {f.name: f.type for f in schema}
        self.total_rows = int(self._file.metadata.num_rows)
        self.total_bytes = source.stat().st_size

    def bytes_read(self) -> int:
        return 0  # progress counts rows: total_rows is known

    def chunks(self, columns: tuple[str, ...]) -> Generator[Chunk, None, None]:
        start = 0
        try:
            for batch in self._batches(columns):
                n = batch.num_rows
                rows = np.arange(start + 1, start + n + 1, dtype=np.int64)
                yield Chunk(rows=rows, columns={c: batch.column(c) for c in batch.schema.names})
                start += n
        except (pa.ArrowException, OSError) as exc:
            raise InputFileError(
                f"{self.name} is not a readable Parquet file (failed near row {start + 1}): "
                f"{_first_line(exc)}"
            ) from None

    def _batches(self, columns: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
        # One row group at a time: pre-buffering coalesces a row group's reads (2-3x faster than page
        # by page), but given the whole file it would buffer the whole file.
        for group in range(self._file.num_row_groups):
            yield from self._file.iter_batches(
                batch_size=self.batch_rows, row_groups=[group], columns=list(columns)
            )

    def close(self) -> None:
        self._file.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ParquetWriter:
    """Appends Arrow tables to a Parquet file; the schema comes from the first chunk."""

    def __init__(self, sink: IO[bytes], name: str) -> None:
        self._sink = sink
        self.name = name
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, data: pa.Table | np.ndarray[Any, Any]) -> None:
        if not isinstance(data, pa.Table):
            raise TypeError("the Parquet writer takes Arrow tables")
        if self._writer is None:
            self._schema = data.schema
            self._writer = pq.ParquetWriter(self._sink, data.schema)
        assert self._schema is not None
        self._writer.write_table(data.cast(self._schema))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class ParquetFormat:
    """Apache Parquet (``.parquet``, ``.pq``); needs a real file on both ends."""

    name: ClassVar[str] = "parquet"
    extensions: ClassVar[tuple[str, ...]] = (".parquet", ".pq")
    tabular: ClassVar[bool] = True
    streams: ClassVar[bool] = False

    def open_reader(self, source: Source, name: str, batch_rows: int) -> ChunkReader:
        return ParquetReader(source, name, batch_rows)

    def open_writer(self, sink: IO[bytes], name: str) -> ChunkWriter:
        return ParquetWriter(sink, name)


FORMATS: tuple[TableFormat, ...] = (ParquetFormat(),)
