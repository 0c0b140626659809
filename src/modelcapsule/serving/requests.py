"""Request checks compiled once per model version from its signature.

At load time each input of the signature becomes an :class:`InputCheck` (dtype, rank, fixed dimensions,
column names); a request then costs one ``numpy`` conversion and a few integer comparisons per tensor.
Every failure is an :class:`InvalidRequestError` that names the field and the value expected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..types import Signature, TensorSpec
from .errors import InvalidRequestError

__all__ = ["InputCheck", "Inputs", "RequestValidator", "Table", "exact_cast", "shape_text"]


def shape_text(shape: Sequence[int]) -> str:
    """``[-1, 4]`` as a message shows a shape (``-1`` is any size)."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


@dataclass(frozen=True)
class Table:
    """A tabular input held as one 1-D array per column, in the signature's column order.

    Kept as columns (not a DataFrame) so that batching concatenates plain arrays; the DataFrame is built
    once per model call.
    """

    columns: dict[str, np.ndarray[Any, Any]]

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.columns, copy=False)

    def as_array(self) -> np.ndarray[Any, Any]:
        return np.column_stack(list(self.columns.values()))


Inputs = dict[str, "np.ndarray[Any, Any] | Table"]
"""A checked request: input name → array (batch first) or :class:`Table`."""


def _rows(value: np.ndarray[Any, Any] | Table) -> int:
    return value.n_rows if isinstance(value, Table) else int(value.shape[0])


def _to_array(value: Any, dtype: np.dtype[Any], field: str) -> np.ndarray[Any, Any]:
    if isinstance(value, np.ndarray):
        if value.dtype == dtype:
            return value
        if dtype.kind == "O":
            return value.astype(object)
        if value.dtype.kind == "O" or not np.can_cast(value.dtype, dtype, "same_kind"):
            raise InvalidRequestError(
                f"{field} has dtype {value.dtype.name}; expected {dtype.name} (or a type that converts to it "
                "without loss)."
            )
        return value.astype(dtype, copy=False)
    try:
        if dtype.kind in "fiub":
            arr = np.asarray(value)
            if arr.dtype.kind not in "biuf":
                raise InvalidRequestError(
                    f"{field} holds {_kind_name(arr)} values; expected numbers of dtype {dtype.name}."
                )
            return exact_cast(arr, dtype, field, value)
        return np.asarray(value, dtype=dtype)
    except InvalidRequestError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidRequestError(
            f"{field} is not a rectangular array of {dtype.name} values ({exc}); send nested lists whose "
            "rows "
            "all have the same length."
        ) from None


_EXACT = 2**53


def exact_cast(arr: np.ndarray[Any, Any], dtype: np.dtype[Any], field: str, source: Any = None) -> np.ndarray[Any, Any]:
    """``arr`` (read from the JSON lists ``source``) as ``dtype`` when no value changes: floats into
    integers only when whole (JSON Schema's ``0.0`` is the integer 0), integers only within the target's
    range; anything else is refused, never wrapped or truncated."""
    if arr.dtype == dtype or dtype.kind not in "iu" or arr.dtype.kind not in "iuf" or not arr.size:
        return arr.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    if arr.dtype.kind == "f":  # rare: read again value by value, so that large integers stay exact
        values = np.asarray(arr if source is None else source, dtype=object).ravel().tolist()
        for i, x in enumerate(values):
            if isinstance(x, float):
                # a float names one integer only when whole and within 2**53 (JSON parsers read
                # integers beyond 64 bits as floats)
                if not (x.is_integer() and -_EXACT <= x <= _EXACT):
                    raise InvalidRequestError(
                        f"{field} holds floating-point values; expected integers of dtype {dtype.name} (got {x!r}).")
                values[i] = int(x)
        low, high = min(values), max(values)
        if low < info.min or high > info.max:
            raise InvalidRequestError(
                f"{field} holds {low if low < info.min else high}, outside the range of {dtype.name} "
                f"[{info.min}, {info.max}].")
        return np.array(values, dtype=dtype).reshape(arr.shape)
    low, high = arr.min(), arr.max()
    if low < info.min or high > info.max:
        raise InvalidRequestError(
            f"{field} holds {low if low < info.min else high}, outside the range of {dtype.name} "
            f"[{info.min}, {info.max}]."
        )
    return arr.astype(dtype)


def _kind_name(arr: np.ndarray[Any, Any]) -> str:
    names = {"U": "string", "S": "bytes", "O": "mixed or null"}
    return names.get(arr.dtype.kind, str(arr.dtype.name))


@dataclass(frozen=True)
class InputCheck:
    """The compiled check of one signature input."""

    spec: TensorSpec
    dtype: np.dtype[Any]
    fixed: tuple[tuple[int, int], ...]
    """(axis, size) of every fixed dimension."""

    @classmethod
    def compile(cls, spec: TensorSpec) -> InputCheck:
        fixed = tuple((axis, size) for axis, size in enumerate(spec.shape) if size >= 0 and axis > 0)
        return cls(spec, np.dtype(spec.dtype), fixed)

    @property
    def columns(self) -> tuple[str, ...] | None:
        return None if self.spec.columns is None else tuple(c.name for c in self.spec.columns)

    def check(self, value: Any, field: str) -> np.ndarray[Any, Any] | Table:
        """``value`` (nested lists, an array, or for tabular inputs a column mapping) as a checked tensor."""
        if self.spec.columns is not None:
            return self.check_table(value, field)
        arr = _to_array(value, self.dtype, field)
        return self._check_shape(arr, field)

    def _check_shape(self, arr: np.ndarray[Any, Any], field: str) -> np.ndarray[Any, Any]:
        rank = len(self.spec.shape)
        if arr.ndim == rank - 1 and rank == 2 and self.spec.shape[1] == 1:
            arr = arr.reshape(-1, 1)  # one scalar per instance, as TF Serving's examples send them
        if arr.ndim != rank:
            raise InvalidRequestError(
                f"{field} has shape {shape_text(arr.shape)}; expected {shape_text(self.spec.shape)} "
                f"({rank} dimensions, the first one the batch). Wrap a single row in a list."
            )
        for axis, size in self.fixed:
            if arr.shape[axis] != size:
                raise InvalidRequestError(
                    f"{field} has shape {shape_text(arr.shape)}; expected {shape_text(self.spec.shape)}: "
                    f"dimension {axis} must be {size}."
                )
        if arr.shape[0] == 0:
            raise InvalidRequestError(f"{field} has no rows; send at least one.")
        return arr

    def check_table(self, value: Any, field: str) -> Table:
        specs = self.spec.columns or ()
        if isinstance(value, Table):
            value = value.columns
        if isinstance(value, Mapping):
            missing = [c.name for c in specs if c.name not in value]
            if missing:
                raise InvalidRequestError(
                    f"{field} is missing column(s) {missing}; expected columns {[c.name for c in specs]}."
                )
            extra = [k for k in value if k not in {c.name for c in specs}]
            if extra:
                raise InvalidRequestError(
                    f"{field} has unknown column(s) {extra}; expected columns {[c.name for c in specs]}."
                )
            cols = {c.name: _to_column(value[c.name], c.dtype, f"{field} column {c.name!r}") for c in specs}
            lengths = {len(a) if a.ndim == 1 else -1 for a in cols.values()}
            if len(lengths) != 1 or -1 in lengths:
                raise InvalidRequestError(f"{field}: every column must be a flat list of the same length.")
            table = Table(cols)
        else:
            try:
                arr = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=object)
            except ValueError:
                raise InvalidRequestError(
                    f"{field} is not a table: send rows of {len(specs)} values for the columns "
                    f"{[c.name for c in specs]}, all of the same length."
                ) from None
            if arr.ndim == 1 and len(specs) == 1:
                arr = arr.reshape(-1, 1)
            if arr.ndim != 2 or arr.shape[1] != len(specs):
                raise InvalidRequestError(
                    f"{field} has shape {shape_text(arr.shape)}; expected rows of {len(specs)} values for "
                    f"the columns {[c.name for c in specs]}."
                )
            table = Table(
                {
                    c.name: _to_column(_column(arr, i), c.dtype, f"{field} column {c.name!r}")
                    for i, c in enumerate(specs)
                }
            )
        if table.n_rows == 0:
            raise InvalidRequestError(f"{field} has no rows; send at least one.")
        return table


_STRING_DTYPES = frozenset({"str", "string", "unicode"})


def _to_column(values: Any, dtype_name: str, field: str) -> np.ndarray[Any, Any]:
    """One column of a table, by its saved dtype: numbers may arrive as numeric strings (CSV, V2 BYTES),
    string columns must hold strings, and dtypes numpy does not know (``category``...) pass as objects."""
    if dtype_name in _STRING_DTYPES:
        arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
        flat = arr.ravel().tolist() if arr.dtype.kind == "O" else None
        if flat is not None and not all(isinstance(v, str) for v in flat):
            bad = next(v for v in flat if not isinstance(v, str))
            raise InvalidRequestError(f"{field} holds {bad!r}; expected strings.")
        return arr.astype(object)
    try:
        dtype = np.dtype(dtype_name)
    except TypeError:
        return np.asarray(values, dtype=object)
    if dtype.kind in "biuf":
        try:
            arr = values if isinstance(values, np.ndarray) else np.asarray(values)
        except (ValueError, TypeError):
            raise InvalidRequestError(f"{field} must be a flat list of {dtype.name} values.") from None
        if arr.dtype.kind in "US" or (arr.dtype.kind == "O" and all(isinstance(v, str) for v in arr.ravel())):
            try:
                return arr.astype(str).astype(dtype)
            except (ValueError, OverflowError):
                raise InvalidRequestError(f"{field} holds values that are not {dtype.name} numbers.") from None
    return _to_array(values, dtype, field)


def _column(arr: np.ndarray[Any, Any], i: int) -> Any:
    col = arr[:, i]
    return col.tolist() if col.dtype.kind == "O" else col


class RequestValidator:
    """Checks a whole request (every input, the requested outputs) against one model's signature."""

    def __init__(self, signature: Signature | None) -> None:
        self.signature = signature
        self.inputs = {} if signature is None else {s.name: InputCheck.compile(s) for s in signature.inputs}
        self.input_names = tuple(self.inputs)
        self._single = self.input_names[0] if len(self.input_names) == 1 else None
        self.output_names = () if signature is None else signature.output_names
        self._outputs = frozenset(self.output_names)

    @property
    def single_input(self) -> InputCheck | None:
        return next(iter(self.inputs.values())) if len(self.inputs) == 1 else None

    def check_inputs(self, raw: Mapping[str, Any], where: str = "input") -> Inputs:
        """Check every named input; unknown or missing names are named in the error."""
        if not self.inputs:  # a capsule without a signature: pass arrays through unchecked
            return {name: np.asarray(v) for name, v in raw.items()}
        if len(raw) == 1 and self._single is not None and self._single in raw:  # the usual case, checked alone
            name = self._single
            return {name: self.inputs[name].check(raw[name], f"{where} {name!r}")}
        unknown = [n for n in raw if n not in self.inputs]
        if unknown:
            raise InvalidRequestError(f"unknown {where} name(s) {unknown}; this model takes {list(self.input_names)}.")
        missing = [n for n in self.input_names if n not in raw]
        if missing:
            raise InvalidRequestError(f"missing {where}(s) {missing}; this model takes {list(self.input_names)}.")
        checked: Inputs = {n: self.inputs[n].check(raw[n], f"{where} {n!r}") for n in self.input_names}
        rows = {_rows(v) for v in checked.values()}
        if len(rows) > 1:
            raise InvalidRequestError(f"inputs have different numbers of rows {sorted(rows)}; they must match.")
        return checked

    def check_outputs(self, names: Sequence[str] | None) -> tuple[str, ...]:
        """The requested output names (default: all of them), each checked against the signature."""
        if not names:
            return self.output_names
        for name in names:
            if self._outputs and name not in self._outputs:
                raise InvalidRequestError(f"unknown output {name!r}; this model gives {list(self.output_names)}.")
        return tuple(names)


def rows_of(inputs: Inputs) -> int:
    """Number of rows of a checked request."""
    return _rows(next(iter(inputs.values()))) if inputs else 0
