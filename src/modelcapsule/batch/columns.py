"""Matching an input file to the capsule's signature, and turning each chunk into model input.

:func:`plan_columns` runs once, before any row is read: it checks the file's columns (by name) and, for
files with typed columns, their types against the signature, and fails with one line naming every
missing or extra column or the first mismatched dtype. :func:`convert_chunk` then parses each chunk's
values to the dtypes the model expects; a value that does not parse rejects its row (with the reason),
and a missing value is marked so the scoring loop can set its row aside if the model refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ..types import TensorSpec
from .convert import convert_array, convert_column
from .errors import BatchUsageError, InputSchemaError
from .table import Chunk, ChunkReader

__all__ = ["ColumnPlan", "Converted", "convert_chunk", "plan_columns"]


@dataclass(frozen=True)
class ColumnPlan:
    """Which file columns feed the model, in the model's order, and the dtype each must become.

    ``names`` are the column names the model was fitted with (it then gets a DataFrame), or ``None``
    when it was fitted on a plain array (it then gets a 2-D array, columns in ``features`` order).
    ``dtypes`` holds ``None`` for a column the model takes as Python objects (strings, categories).
    """

    source: str
    spec: TensorSpec
    features: tuple[str, ...]
    names: tuple[str, ...] | None
    dtypes: tuple[np.dtype[Any] | None, ...]
    id_column: str | None = None

    @property
    def read_columns(self) -> tuple[str, ...]:
        """The columns to read from the file: the features, then the id column."""
        if self.id_column is None or self.id_column in self.features:
            return self.features
        return (*self.features, self.id_column)


@dataclass
class Converted:
    """One chunk parsed for the model.

    ``values`` maps each feature to a 1-D array (tabular input) or holds the whole array under ``""``
    (NPY input). ``bad`` maps a row's position in the chunk to why it was rejected; ``missing`` maps a
    position to the first column holding a missing value (NaN or null) the model may or may not accept.
    """

    values: dict[str, np.ndarray[Any, Any]]
    bad: dict[int, str] = field(default_factory=dict)
    missing: dict[int, str] = field(default_factory=dict)


def _dtype(name: str) -> np.dtype[Any] | None:
    """The numpy dtype named by a signature, or ``None`` for object-like ones (``object``, ``category``,
    ``string``, ...), which are passed through as Python values."""
    try:
        dtype = np.dtype(name)
    except TypeError:
        return None
    return None if dtype.kind in "OUSV" else dtype


def _listing(names: list[str] | tuple[str, ...], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def plan_columns(
    spec: TensorSpec,
    reader: ChunkReader,
    *,
    columns: tuple[str, ...] | None = None,
    id_column: str | None = None,
) -> ColumnPlan:
    """Match ``reader``'s columns to the model input ``spec``; raise :class:`InputSchemaError` naming
    missing or extra columns and dtype mismatches."""
    if reader.kind == "array":
        return _plan_array(spec, reader, columns, id_column)
    src = reader.name
    present = list(reader.columns)
    if id_column is not None and id_column not in present:
        raise InputSchemaError(f"{src} has no id column {id_column!r}; its columns are {_listing(present)}.")
    if spec.columns is not None:
        names = tuple(c.name for c in spec.columns)
        dtypes = tuple(_dtype(c.dtype) for c in spec.columns)
        missing = [n for n in names if n not in present]
        if missing:
            raise InputSchemaError(
                f"{src} lacks column(s) {_listing(missing)} that the model takes; it expects "
                f"{_listing(names)}."
            )
        offered = list(columns) if columns is not None else [c for c in present if c != id_column]
        extra = [c for c in offered if c not in names]
        if extra:
            hint = (
                "drop them from columns="
                if columns is not None
                else (
                    "drop them, pass columns=[...] (--columns) listing the model's columns to ignore "
                    "the rest, or id_column= (--id-column) to carry one through"
                )
            )
            raise InputSchemaError(
                f"{src} has column(s) {_listing(extra)} that the model does not take; {hint}."
            )
        if columns is not None and (absent := [n for n in names if n not in offered]):
            raise InputSchemaError(f"columns= leaves out {_listing(absent)}, which the model takes.")
        plan = ColumnPlan(src, spec, names, names, dtypes, id_column)
    else:
        if len(spec.shape) != 2:
            raise InputSchemaError(
                f"the model takes arrays of shape {_shape(spec.shape)}, not table rows; give an NPY file."
            )
        features = tuple(columns) if columns is not None else tuple(c for c in present if c != id_column)
        if absent := [c for c in features if c not in present]:
            raise InputSchemaError(
                f"{src} has no column(s) {_listing(absent)}; its columns are {_listing(present)}."
            )
        width = spec.shape[1]
        if width not in (-1, len(features)):
            how = "columns=" if columns is not None else src
            raise InputSchemaError(
                f"the model takes {width} feature columns but {how} gives {len(features)} "
                f"({_listing(features)}); the capsule records no column names, so pass columns=[...] "
                "(--columns a,b,...) naming the input columns in the model's order."
            )
        dtype = _dtype(spec.dtype)
        plan = ColumnPlan(src, spec, features, None, (dtype,) * len(features), id_column)
    if reader.kind == "typed":
        for col, dtype in zip(plan.features, plan.dtypes, strict=True):
            _check_arrow_type(src, col, reader.types[col], dtype)
    return plan


def _plan_array(
    spec: TensorSpec, reader: ChunkReader, columns: tuple[str, ...] | None, id_column: str | None
) -> ColumnPlan:
    src = reader.name
    if columns is not None or id_column is not None:
        raise BatchUsageError(
            f"{src} is an array without column names; columns= and id_column= do not apply."
        )
    assert reader.array_shape is not None and reader.array_dtype is not None
    shape = reader.array_shape
    want = spec.shape if spec.columns is None else (-1, len(spec.columns))
    if len(shape) != len(want) or any(w not in (-1, s) for w, s in zip(want[1:], shape[1:], strict=True)):
        raise InputSchemaError(
            f"{src} holds an array of shape {shape}, but the model takes {_shape(want)} (-1: any size)."
        )
    if spec.columns is not None:
        names = tuple(c.name for c in spec.columns)
        dtypes = tuple(_dtype(c.dtype) for c in spec.columns)
    else:
        names, dtypes = None, (_dtype(spec.dtype),)
    for i, dtype in enumerate(dtypes):
        label = names[i] if names else "the array"
        if dtype is not None and not _castable(reader.array_dtype, dtype):
            raise InputSchemaError(
                f"{src} holds {reader.array_dtype} values but the model expects {dtype} for {label!s}; "
                "convert the file's dtype first."
            )
    return ColumnPlan(src, spec, (), names, dtypes, None)


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join("n" if d == -1 else str(d) for d in shape) + ")"


def _castable(src: np.dtype[Any], dst: np.dtype[Any]) -> bool:
    """Numbers convert within their kind (float64 → float32) and upwards (int → float, bool → int)."""
    if src.kind not in "biuf" or dst.kind not in "biuf":
        return src == dst
    return bool(np.can_cast(src, dst, casting="same_kind") or (src.kind in "biu" and dst.kind == "f"))


def _check_arrow_type(src: str, col: str, arrow: pa.DataType, dtype: np.dtype[Any] | None) -> None:
    if dtype is None or pa.types.is_null(arrow):
        return
    try:
        np_type = np.dtype(arrow.to_pandas_dtype())
    except (NotImplementedError, TypeError):
        np_type = np.dtype(object)
    if not _castable(np_type, dtype):
        raise InputSchemaError(
            f"column {col!r} of {src} holds {arrow} values but the model expects {dtype}; convert the column "
            "before scoring."
        )


def convert_chunk(chunk: Chunk, plan: ColumnPlan, kind: str) -> Converted:
    """Parse one chunk's feature values to the planned dtypes, collecting bad and missing rows."""
    if kind == "array":
        assert chunk.array is not None
        return convert_array(chunk.array, plan.dtypes, plan.names)
    out = Converted(values={})
    for col, dtype in zip(plan.features, plan.dtypes, strict=True):
        values, bad, missing = convert_column(chunk.columns[col], dtype, kind)
        out.values[col] = values
        for pos, reason in bad.items():
            out.bad.setdefault(pos, f"column {col!r}: {reason}")
        for pos in missing:
            out.missing.setdefault(int(pos), col)
    return out


def raw_value(column: pa.Array | pa.ChunkedArray | list[Any], pos: int) -> Any:
    """The input value at ``pos`` as a plain Python value (for the rejects file)."""
    if isinstance(column, list):
        return column[pos]
    return column[pos].as_py()
