"""CSV through pyarrow's streaming reader and writer.

Every column is read as text and parsed against the signature afterwards, so one bad value rejects its
row instead of stopping the stream (pyarrow's typed reader cannot resume after a conversion error).
Parsing text to numbers with ``pyarrow.compute.cast`` is as fast as pyarrow's typed reader here.
"""

from __future__ import annotations

import csv as stdcsv
from collections.abc import Generator
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from .errors import InputFileError
from .streams import CountingStream, open_binary, read_prefix_line
from .table import Chunk, ChunkReader, ChunkWriter, ColumnKind, Source, TableFormat

__all__ = ["CsvFormat"]

_BLOCK = 256 << 10
"""Bytes pyarrow parses at a time (at least; see ``CsvReader``)."""


class CsvReader:
    """Reads a CSV file (or standard input) with a header row, in chunks of ``batch_rows`` rows."""

    kind: ColumnKind = "text"
    array_shape = None
    array_dtype = None

    def __init__(self, source: Source, name: str, batch_rows: int) -> None:
        self.name = name
        self.batch_rows = batch_rows
        self.types: dict[str, pa.DataType] = {}
        self.total_rows = None
        self._path = source if isinstance(source, Path) else None
        self._native: Any = None
        self._stream, self.total_bytes = open_binary(source)
        try:
            self.columns, header_bytes = _header(self._stream, name)
        except BaseException:
            self._stream.close()
            raise
        if self._path is not None:  # the header was all we needed from the Python stream
            self._stream.close()
        # Small blocks keep pyarrow's read-ahead small (1 MiB blocks cost ~5x the peak memory here);
        # a block must still hold whole rows, so wide files get larger ones.
        self._block = min(max(_BLOCK, 64 * header_bytes), 64 << 20)

    def bytes_read(self) -> int:
        if self._path is None:
            return self._stream.counted
        return int(self._native.tell()) if self._native is not None and not self._native.closed else 0

    def _open(self) -> tuple[Any, pacsv.ReadOptions]:
        """What pyarrow reads. A file is opened natively, so pyarrow's read-ahead threads never call
        back into Python (a Python stream read from those threads can abort the process when it exits
        mid-read on a signal); standard input, which only Python holds, is read without threads."""
        if self._path is None:
            return self._stream, pacsv.ReadOptions(block_size=self._block, use_threads=False)
        self._native = pa.OSFile(str(self._path))
        source: Any = self._native
        if self._path.suffix.lower() == ".gz":
            source = pa.CompressedInputStream(self._native, "gzip")
        return source, pacsv.ReadOptions(block_size=self._block)

    def chunks(self, columns: tuple[str, ...]) -> Generator[Chunk, None, None]:
        convert = pacsv.ConvertOptions(
            column_types=dict.fromkeys(columns, pa.string()),
            include_columns=list(columns),
            strings_can_be_null=True,
        )
        source, options = self._open()
        reader = None
        try:
            reader = pacsv.open_csv(source, convert_options=convert, read_options=options)
            pending: list[pa.RecordBatch] = []
            held = 0
            start = 0
            for batch in reader:
                pending.append(batch)
                held += batch.num_rows
                while held >= self.batch_rows:
                    table = pa.Table.from_batches(pending)  # slices below are zero-copy
                    yield self._chunk(table.slice(0, self.batch_rows), start)
                    start += self.batch_rows
                    rest = table.slice(self.batch_rows)
                    pending, held = rest.to_batches(), rest.num_rows
            if held:
                yield self._chunk(pa.Table.from_batches(pending), start)
        except pa.ArrowInvalid as exc:
            raise InputFileError(f"{self.name} is not a readable CSV file: {_first_line(exc)}") from None
        finally:  # stop the read-ahead before the file goes away
            if reader is not None:
                reader.close()
            if self._native is not None:
                self._native.close()

    def _chunk(self, table: pa.Table, start: int) -> Chunk:
        rows = np.arange(start + 1, start + table.num_rows + 1, dtype=np.int64)
        return Chunk(rows=rows, columns={c: table.column(c) for c in table.column_names})

    def close(self) -> None:
        self._stream.close()
        if self._native is not None:
            self._native.close()


def _header(stream: CountingStream, name: str) -> tuple[tuple[str, ...], int]:
    line = read_prefix_line(stream)
    if not line.strip():
        raise InputFileError(f"{name} is empty or has no header row; a CSV input needs a header naming its columns.")
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputFileError(f"{name} is not a UTF-8 CSV file (its header row does not decode).") from None
    header = next(stdcsv.reader([text.rstrip("\r\n")]))
    seen: set[str] = set()
    for col in header:
        if col in seen:
            raise InputFileError(f"{name} has two columns named {col!r}; column names must be unique.")
        seen.add(col)
    return tuple(header), len(line)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class CsvWriter:
    """Appends Arrow tables to a CSV file; the header comes from the first chunk."""

    def __init__(self, sink: IO[bytes], name: str) -> None:
        self._sink = sink
        self.name = name
        self._writer: pacsv.CSVWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, data: pa.Table | np.ndarray[Any, Any]) -> None:
        if not isinstance(data, pa.Table):
            raise TypeError("the CSV writer takes Arrow tables")
        if self._writer is None:
            self._schema = data.schema
            self._writer = pacsv.CSVWriter(
                self._sink, data.schema, write_options=pacsv.WriteOptions(quoting_style="needed")
            )
        assert self._schema is not None
        self._writer.write_table(data.cast(self._schema))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class CsvFormat:
    """Comma-separated values with a header row (``.csv``, ``.csv.gz``); streams through ``-``."""

    name: ClassVar[str] = "csv"
    extensions: ClassVar[tuple[str, ...]] = (".csv",)
    tabular: ClassVar[bool] = True
    streams: ClassVar[bool] = True

    def open_reader(self, source: Source, name: str, batch_rows: int) -> ChunkReader:
        return CsvReader(source, name, batch_rows)

    def open_writer(self, sink: IO[bytes], name: str) -> ChunkWriter:
        return CsvWriter(sink, name)


FORMATS: tuple[TableFormat, ...] = (CsvFormat(),)
