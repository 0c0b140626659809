"""Parsing one column's values to the dtype the model expects, row by row when the fast path fails.

The fast path is one vectorised Arrow cast per column. Only when it fails (a bad value somewhere in the
chunk) does the slow path look at each value in Python, to find which rows are bad and why; the good
rows of that chunk still get scored. Missing values (null, NaN) stay NaN in float columns, since many
models take them, and reject their row in integer and boolean columns, which cannot hold them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from .columns import Converted

__all__ = ["convert_array", "convert_column"]

Column: TypeAlias = pa.Array | pa.ChunkedArray | list[Any]
_TRUE = {"true", "1", "t", "yes", "y"}
_FALSE = {"false", "0", "f", "no", "n"}


def convert_column(
    column: Column, dtype: np.dtype[Any] | None, kind: str
) -> tuple[np.ndarray[Any, Any], dict[int, str], np.ndarray[Any, Any]]:
    """``(values, bad, missing)``: the parsed values, ``{position: reason}`` for rows whose value does not
    parse, and the positions holding a missing value the model may still accept (NaN in floats, None in
    object columns)."""
    if kind == "json":
        assert isinstance(column, list)
        arr: pa.Array | None = _json_to_arrow(column, dtype)
        if arr is None:
            return _slow(column, dtype, kind)
    else:
        assert not isinstance(column, list)
        arr = column
    if dtype is None:
        values = np.empty(len(arr), dtype=object)
        values[:] = arr.to_pylist()
        return values, {}, np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))
    target = pa.from_numpy_dtype(dtype)
    if kind == "text":
        cast = _try_cast(arr, target)
        if cast is None:
            cast = _try_cast(pc.utf8_trim_whitespace(arr), target)
    else:
        cast = _try_cast(arr, target)
    if cast is None:
        return _slow(arr.to_pylist(), dtype, kind)
    return _finish(cast, dtype)


def _try_cast(arr: pa.Array, target: pa.DataType) -> pa.Array | None:
    try:
        return pc.cast(arr, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _json_to_arrow(values: list[Any], dtype: np.dtype[Any] | None) -> pa.Array | None:
    try:
        if dtype is None:
            return pa.array(
                [v if v is None or isinstance(v, (str, int, float, bool)) else str(v) for v in values]
            )
        return pa.array(values, type=pa.from_numpy_dtype(dtype))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return None


def _finish(
    arr: pa.Array, dtype: np.dtype[Any]
) -> tuple[np.ndarray[Any, Any], dict[int, str], np.ndarray[Any, Any]]:
    if dtype.kind == "f":
        values = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=dtype)
        return values, {}, np.flatnonzero(np.isnan(values))
    bad: dict[int, str] = {}
    if arr.null_count:
        nulls = np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))
        bad = {
            int(i): f"missing value, but the model expects {dtype}, which cannot be missing" for i in nulls
        }
        arr = arr.fill_null(pa.scalar(0 if dtype.kind != "b" else False, type=arr.type))
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=dtype), bad, np.empty(0, dtype=np.int64)


def _slow(
    values: list[Any], dtype: np.dtype[Any] | None, kind: str
) -> tuple[np.ndarray[Any, Any], dict[int, str], np.ndarray[Any, Any]]:
    """Parse each value on its own, to name the rows that do not parse."""
    if dtype is None:
        out = np.empty(len(values), dtype=object)
        out[:] = [v if v is None or isinstance(v, (str, int, float, bool)) else str(v) for v in values]
        return out, {}, np.asarray([i for i, v in enumerate(values) if v is None], dtype=np.int64)
    parse = _PARSERS[(kind == "json", dtype.kind)]
    fill: Any = np.nan if dtype.kind == "f" else 0
    out = np.empty(len(values), dtype=dtype)
    bad: dict[int, str] = {}
    for i, v in enumerate(values):
        if v is None:
            out[i] = fill
            if dtype.kind != "f":
                bad[i] = f"missing value, but the model expects {dtype}, which cannot be missing"
            continue
        try:
            out[i] = _in_range(parse(v), dtype)
        except (ValueError, TypeError, OverflowError):
            out[i] = fill
            bad[i] = f"{_show(v)} is not {_WHAT[dtype.kind]} (the model expects {dtype})"
    missing = np.flatnonzero(np.isnan(out)) if dtype.kind == "f" else np.empty(0, dtype=np.int64)
    missing = np.asarray([i for i in missing if int(i) not in bad], dtype=np.int64)
    return out, bad, missing


def _in_range(value: Any, dtype: np.dtype[Any]) -> Any:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            raise OverflowError(value)
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text_int(v: str) -> int:
    try:
        return int(v)
    except ValueError:
        f = float(v)
        if not f.is_integer():
            raise
        return int(f)


def _text_bool(v: str) -> bool:
    s = v.strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(v)


def _json_number(v: Any) -> float:
    if isinstance(v, (int, float)):
        return float(v)
    raise TypeError(v)


def _json_int(v: Any) -> int:
    if isinstance(v, (bool, int)):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    raise TypeError(v)


def _json_bool(v: Any) -> bool:
    if isinstance(v, bool) or v in (0, 1):
        return bool(v)
    raise TypeError(v)


_PARSERS: dict[tuple[bool, str], Callable[[Any], Any]] = {
    (False, "f"): float,
    (False, "i"): _text_int,
    (False, "u"): _text_int,
    (False, "b"): _text_bool,
    (True, "f"): _json_number,
    (True, "i"): _json_int,
    (True, "u"): _json_int,
    (True, "b"): _json_bool,
}
_WHAT = {"f": "a number", "i": "an integer", "u": "a non-negative integer", "b": "true or false"}


def convert_array(
    array: np.ndarray[Any, Any], dtypes: tuple[np.dtype[Any] | None, ...], names: tuple[str, ...] | None
) -> Converted:
    """Convert an NPY chunk: split into named columns for a model fitted on a table, else keep it whole."""
    from .columns import Converted

    out = Converted(values={})
    if names is not None:
        for i, (name, dtype) in enumerate(zip(names, dtypes, strict=True)):
            col = array[:, i] if dtype is None else np.asarray(array[:, i], dtype=dtype)
            out.values[name] = col
            if col.dtype.kind == "f":
                for pos in np.flatnonzero(np.isnan(col)):
                    out.missing.setdefault(int(pos), name)
        return out
    dtype = dtypes[0]
    whole = array if dtype is None else np.asarray(array, dtype=dtype)
    out.values[""] = whole
    if whole.dtype.kind == "f" and len(whole):
        for pos in np.flatnonzero(np.isnan(whole.reshape(len(whole), -1)).any(axis=1)):
            out.missing[int(pos)] = ""
    return out
