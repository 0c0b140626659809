"""Turning row-shaped request bodies (lists of rows, records, named columns) into a model's input.

Seldon, the plain recipe and MLflow all send one table of rows; this module maps it onto the model's
single input, by column name when the model was trained on a DataFrame. The result is the raw input
mapping the data plane then checks against the signature.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequestError, UnsupportedMethodError
from ..models import LoadedVersion

__all__ = ["from_records", "from_rows", "single_input_name"]


def single_input_name(loaded: LoadedVersion) -> str:
    names = loaded.validator.input_names
    if len(names) != 1:
        raise UnsupportedMethodError(
            f"model {loaded.name!r} takes several inputs {list(names)}; use the V2 or TF Serving routes."
        )
    return names[0]


def from_rows(loaded: LoadedVersion, rows: Any, names: list[str] | None, field: str) -> dict[str, Any]:
    """Rows of values (optionally with column names) as the model's single input."""
    name = single_input_name(loaded)
    check = loaded.validator.inputs.get(name)
    columns = check.columns if check is not None else None
    if names is not None and columns is not None:
        if not isinstance(names, list) or sorted(map(str, names)) != sorted(columns):
            raise InvalidRequestError(f"{field} names {names!r} do not match the model's columns {list(columns)}.")
        if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == len(names) for r in rows):
            raise InvalidRequestError(f"{field} must be a list of rows of {len(names)} values each.")
        return {name: {c: [r[names.index(c)] for r in rows] for c in columns}}
    return {name: rows}


def from_records(loaded: LoadedVersion, records: Any, field: str) -> dict[str, Any]:
    """A list of ``{column: value}`` objects as the model's single input."""
    name = single_input_name(loaded)
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise InvalidRequestError(f"{field} must be a non-empty list of objects (column name → value).")
    check = loaded.validator.inputs.get(name)
    columns = check.columns if check is not None else None
    if columns is None:
        width = len(records[0])
        if any(len(r) != width for r in records):
            raise InvalidRequestError(f"every record of {field} must have the same {width} keys.")
        return {name: [list(r.values()) for r in records]}
    table: dict[str, list[Any]] = {c: [] for c in columns}
    for i, record in enumerate(records):
        missing = [c for c in columns if c not in record]
        if missing:
            raise InvalidRequestError(f"{field}[{i}] is missing column(s) {missing}; expected {list(columns)}.")
        for c in columns:
            table[c].append(record[c])
    return {name: table}
