"""Naming prediction columns and building the output chunk.

A 1-D output becomes one column named after its method (``predict``). A 2-D output becomes one column
per class for a classifier's per-class methods (``predict_proba_setosa``...), else ``<method>_0``,
``<method>_1``... The id column, when asked for, comes first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from .errors import BatchUsageError

__all__ = ["output_table"]

_PER_CLASS = ("predict_proba", "predict_log_proba", "decision_function")


def output_columns(
    method: str, values: np.ndarray[Any, Any], classes: Sequence[Any] | None
) -> list[tuple[str, np.ndarray[Any, Any]]]:
    """``[(column name, 1-D values)]`` for one method's output."""
    if values.ndim == 1:
        return [(method, values)]
    if values.ndim != 2:
        raise BatchUsageError(
            f"{method} returns arrays of shape {values.shape[1:]} per row, which a table cannot hold; "
            "write an NPY file instead."
        )
    width = values.shape[1]
    if width == 1:
        return [(method, values[:, 0])]
    if classes is not None and len(classes) == width and method in _PER_CLASS:
        return [(f"{method}_{c}", values[:, j]) for j, c in enumerate(classes)]
    return [(f"{method}_{j}", values[:, j]) for j in range(width)]


def output_table(
    results: dict[str, np.ndarray[Any, Any]],
    classes: Sequence[Any] | None,
    ids: tuple[str, pa.Array] | None = None,
) -> pa.Table:
    """The Arrow table written for one chunk: the id column, then every method's columns."""
    arrays: dict[str, pa.Array] = {}
    if ids is not None:
        arrays[ids[0]] = ids[1]
    for method, values in results.items():
        for name, column in output_columns(method, np.asarray(values), classes):
            key = f"{name}_prediction" if name in arrays else name
            arrays[key] = pa.array(column, from_pandas=column.dtype == object)
    return pa.table(arrays)
