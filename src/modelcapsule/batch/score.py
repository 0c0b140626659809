"""The scoring loop: read a chunk, parse it, predict, write; set bad rows aside or stop on the first.

Rows are independent, so scoring a file chunk by chunk gives exactly the predictions of one call on the
whole table, with memory bounded by the chunk size. When the model refuses a chunk and some of its rows
hold missing values, those rows are set aside (the model cannot take them) and the rest are scored; any
other failure of the model stops the run with :class:`ScoringError`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ..types import Predictor
from .columns import ColumnPlan, Converted, convert_chunk, raw_value
from .errors import RejectedRowError, ScoringError
from .outputs import output_table
from .progress import Tracker
from .table import Chunk, ChunkReader, ChunkWriter, Reject

__all__ = ["RejectsWriter", "ScoreCounts", "score_chunks"]


@dataclass
class ScoreCounts:
    """Rows read, and how many of them went to the rejects file."""

    rows: int = 0
    rejected: int = 0
    written: bool = False


class RejectsWriter:
    """Writes set-aside rows as a table: ``row``, ``reason`` and ``input`` (the row's values as JSON)."""

    def __init__(self, writer: ChunkWriter) -> None:
        self._writer = writer

    def write(self, rejects: Sequence[Reject]) -> None:
        if not rejects:
            return
        ordered = sorted(rejects, key=lambda r: r.row)
        self._writer.write(
            pa.table(
                {
                    "row": pa.array([r.row for r in ordered], type=pa.int64()),
                    "reason": pa.array([r.reason for r in ordered], type=pa.string()),
                    "input": pa.array([_as_text(r.values) for r in ordered], type=pa.string()),
                }
            )
        )

    def close(self) -> None:
        self._writer.close()


def _as_text(values: Any) -> str:
    if isinstance(values, str):
        return values
    return json.dumps(values, default=str, allow_nan=True)


def score_chunks(
    predictor: Predictor,
    reader: ChunkReader,
    plan: ColumnPlan,
    writer: ChunkWriter,
    *,
    methods: tuple[str, ...],
    tabular_output: bool,
    rejects: RejectsWriter | None,
    tick: Tracker,
) -> ScoreCounts:
    """Score every chunk of ``reader`` into ``writer``; return the counts."""
    counts = ScoreCounts()
    classes = predictor.signature.classes
    # Closed explicitly, so a reader's read-ahead stops even when an exception (or a signal) ends the loop.
    with closing(reader.chunks(plan.read_columns)) as chunks:
        for chunk in chunks:
            counts.rows += len(chunk) + len(chunk.rejected)
            conv = convert_chunk(chunk, plan, reader.kind)
            keep = np.ones(len(chunk), dtype=bool)
            set_aside = list(chunk.rejected)
            for pos, reason in conv.bad.items():
                keep[pos] = False
                set_aside.append(Reject(int(chunk.rows[pos]), reason, _row_values(chunk, plan, pos)))
            results: dict[str, np.ndarray[Any, Any]] = {}
            if keep.any():
                results, refused = _predict(predictor, plan, conv, keep, methods=methods, chunk=chunk)
                for pos, reason in refused.items():
                    keep[pos] = False
                    set_aside.append(Reject(int(chunk.rows[pos]), reason, _row_values(chunk, plan, pos)))
            if set_aside:
                if rejects is None:
                    first = min(set_aside, key=lambda r: r.row)
                    raise RejectedRowError(first.row, first.reason, plan.source)
                rejects.write(set_aside)
                counts.rejected += len(set_aside)
            if keep.any():
                if tabular_output:
                    ids = None
                    if plan.id_column is not None:
                        id_values = _as_arrow(chunk.columns[plan.id_column])
                        ids = (plan.id_column, id_values if keep.all() else id_values.filter(pa.array(keep)))
                    writer.write(output_table(results, classes, ids))
                else:
                    writer.write(np.asarray(results[methods[0]]))
            tick(counts.rows)
            counts.written = counts.written or bool(keep.any())
    if not counts.written:  # still write a valid, empty file with the columns the model would give
        empty = _empty_results(predictor, methods)
        if tabular_output:
            ids = None if plan.id_column is None else (plan.id_column, pa.array([], type=pa.string()))
            writer.write(output_table(empty, classes, ids))
        else:
            writer.write(empty[methods[0]])
    return counts


def _empty_results(predictor: Predictor, methods: tuple[str, ...]) -> dict[str, np.ndarray[Any, Any]]:
    specs = {t.name: t for t in predictor.signature.outputs}
    out: dict[str, np.ndarray[Any, Any]] = {}
    for method in methods:
        spec = specs.get(method)
        shape = (0,) if spec is None else (0, *(max(d, 1) for d in spec.shape[1:]))
        dtype = np.dtype("float64") if spec is None else np.dtype(spec.dtype)
        out[method] = np.empty(shape, dtype=dtype)
    return out


def _predict(
    predictor: Predictor,
    plan: ColumnPlan,
    conv: Converted,
    keep: np.ndarray[Any, Any],
    *,
    methods: tuple[str, ...],
    chunk: Chunk,
) -> tuple[dict[str, np.ndarray[Any, Any]], dict[int, str]]:
    """Predict the kept rows; if the model refuses and some rows hold missing values, drop those rows
    (returned with the reason) and predict the rest."""
    try:
        return _call(predictor, plan, conv, keep, methods), {}
    except (ValueError, TypeError, RuntimeError) as exc:
        first_error = exc
    missing = {pos: col for pos, col in conv.missing.items() if keep[pos]}
    span = f"rows {int(chunk.rows[0])}–{int(chunk.rows[-1])}"
    if not missing:
        raise ScoringError(f"the model failed on {span} of {plan.source}: {_line(first_error)}") from first_error
    narrowed = keep.copy()
    narrowed[list(missing)] = False
    cause = _line(first_error)
    refused = {
        pos: (f"missing value in column {col!r}" if col else "missing value (NaN)")
        + f", which the model does not take ({cause})"
        for pos, col in missing.items()
    }
    if not narrowed.any():
        return {}, refused
    try:
        return _call(predictor, plan, conv, narrowed, methods), refused
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ScoringError(f"the model failed on {span} of {plan.source}: {_line(exc)}") from exc


def _call(
    predictor: Predictor,
    plan: ColumnPlan,
    conv: Converted,
    keep: np.ndarray[Any, Any],
    methods: tuple[str, ...],
) -> dict[str, np.ndarray[Any, Any]]:
    every = bool(keep.all())

    def pick(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return values if every else values[keep]

    model_input: Any
    if not plan.features:  # an NPY array
        if plan.names is None:
            model_input = pick(conv.values[""])
        else:
            model_input = _frame({n: pick(conv.values[n]) for n in plan.names})
    elif plan.names is not None:
        model_input = _frame({n: pick(conv.values[n]) for n in plan.features})
    else:
        model_input = np.column_stack([pick(conv.values[f]) for f in plan.features])
    out = predictor.predict({plan.spec.name: model_input}, outputs=list(methods))
    return {m: np.asarray(out[m]) for m in methods}


def _frame(columns: dict[str, np.ndarray[Any, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame(columns, copy=False)


def _as_arrow(column: pa.Array | pa.ChunkedArray | list[Any]) -> pa.Array:
    if isinstance(column, list):
        return pa.array([v if v is None or isinstance(v, (str, int, float, bool)) else str(v) for v in column])
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _row_values(chunk: Chunk, plan: ColumnPlan, pos: int) -> dict[str, Any] | str:
    if chunk.array is not None:
        return json.dumps(chunk.array[pos].tolist(), allow_nan=True)
    return {c: raw_value(chunk.columns[c], pos) for c in plan.read_columns}


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
