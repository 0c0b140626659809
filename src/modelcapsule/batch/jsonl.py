"""JSON Lines: one JSON object per line, read and written line by line in chunks.

Column names come from the first object; a later object without a key gives a missing value for it,
and extra keys are ignored. A line that is not a JSON object is rejected with its line number (for
this format the row number *is* the line number, blank lines included).
"""

from __future__ import annotations

import io
import json
from collections.abc import Generator
from typing import IO, Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InputFileError
from .streams import open_binary, read_prefix_line
from .table import Chunk, ChunkReader, ChunkWriter, ColumnKind, Reject, Source, TableFormat

__all__ = ["JsonLinesFormat"]


class JsonLinesReader:
    """Reads JSON Lines (a file or standard input) ``batch_rows`` lines at a time."""

    kind: ColumnKind = "json"
    array_shape = None
    array_dtype = None

    def __init__(self, source: Source, name: str, batch_rows: int) -> None:
        self.name = name
        self.batch_rows = batch_rows
        self.types: dict[str, pa.DataType] = {}
        self.total_rows = None
        self._skipped = 0
        self._stream, self.total_bytes = open_binary(source)
        try:
            self.columns = self._first_keys()
        except BaseException:
            self._stream.close()
            raise

    def _first_keys(self) -> tuple[str, ...]:
        while True:
            line = read_prefix_line(self._stream)
            if not line:
                raise InputFileError(f"{self.name} is empty; a JSON Lines input needs one object per line.")
            if line.strip():
                break
            self._stream.read(len(line))  # a leading blank line: look at the next one
            self._skipped += 1
        try:
            first = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputFileError(
                f"{self.name} is not JSON Lines: its first line is not valid JSON ({exc})."
            ) from None
        if not isinstance(first, dict):
            raise InputFileError(
                f"{self.name} is not JSON Lines of objects: its first line is a {type(first).__name__}, "
                'not an object like {"column": value, ...}.'
            )
        return tuple(str(k) for k in first)

    def bytes_read(self) -> int:
        return self._stream.counted

    def chunks(self, columns: tuple[str, ...]) -> Generator[Chunk, None, None]:
        lineno = self._skipped
        values: dict[str, list[Any]] = {c: [] for c in columns}
        rows: list[int] = []
        rejected: list[Reject] = []
        for raw in io.BufferedReader(self._stream, 1 << 20):
            lineno += 1
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                rejected.append(
                    Reject(lineno, f"not valid JSON ({exc})", raw.decode("utf-8", "replace").strip())
                )
                obj = None
            else:
                if not isinstance(obj, dict):
                    rejected.append(
                        Reject(lineno, f"a JSON {type(obj).__name__}, not an object", raw.decode().strip())
                    )
                    obj = None
            if obj is not None:
                rows.append(lineno)
                for c in columns:
                    values[c].append(obj.get(c))
            if len(rows) + len(rejected) >= self.batch_rows:
                yield Chunk(rows=np.asarray(rows, dtype=np.int64), columns=dict(values), rejected=rejected)
                values = {c: [] for c in columns}
                rows, rejected = [], []
        if rows or rejected:
            yield Chunk(rows=np.asarray(rows, dtype=np.int64), columns=dict(values), rejected=rejected)

    def close(self) -> None:
        self._stream.close()


class JsonLinesWriter:
    """Writes each row of an Arrow table as one JSON object per line (NaN becomes ``null``)."""

    def __init__(self, sink: IO[bytes], name: str) -> None:
        self._sink = sink
        self.name = name

    def write(self, data: pa.Table | np.ndarray[Any, Any]) -> None:
        if not isinstance(data, pa.Table):
            raise TypeError("the JSON Lines writer takes Arrow tables")
        for i, field in enumerate(data.schema):
            if pa.types.is_floating(field.type):
                col = data.column(i)
                data = data.set_column(i, field, pc.if_else(pc.is_nan(col), None, col))
        lines = [json.dumps(row, allow_nan=False, default=str) for row in data.to_pylist()]
        if lines:
            self._sink.write(("\n".join(lines) + "\n").encode())

    def close(self) -> None:
        """Nothing to finish: every line is complete once written."""


class JsonLinesFormat:
    """JSON Lines (``.jsonl``, ``.ndjson``, ``.json``); streams through ``-``."""

    name: ClassVar[str] = "jsonl"
    extensions: ClassVar[tuple[str, ...]] = (".jsonl", ".ndjson", ".json")
    tabular: ClassVar[bool] = True
    streams: ClassVar[bool] = True

    def open_reader(self, source: Source, name: str, batch_rows: int) -> ChunkReader:
        return JsonLinesReader(source, name, batch_rows)

    def open_writer(self, sink: IO[bytes], name: str) -> ChunkWriter:
        return JsonLinesWriter(sink, name)


FORMATS: tuple[TableFormat, ...] = (JsonLinesFormat(),)
