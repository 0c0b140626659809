"""What a batch run is asked to compute, checked before any row is read.

The model's one input, the outputs (methods) to write and the rejects file's format are decided the same
way whether the file is scored here (:func:`~modelcapsule.batch.predict_file`) or on a cluster
(:func:`modelcapsule.integrations.ray.predict_dataset`), so both refuse the same requests with the same
words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import BatchUsageError
from .registry import format_for_path

if TYPE_CHECKING:
    from ..types import Signature, TensorSpec
    from .table import TableFormat

__all__ = ["choose_methods", "model_input", "rejects_format"]


def model_input(signature: Signature) -> TensorSpec:
    """The one input batch scoring feeds; a model that takes several is refused."""
    if len(signature.inputs) != 1:
        names = ", ".join(t.name for t in signature.inputs)
        raise BatchUsageError(f"the model takes {len(signature.inputs)} inputs ({names}); batch scoring feeds one.")
    return signature.inputs[0]


def choose_methods(method: str | Sequence[str] | None, available: tuple[str, ...]) -> tuple[str, ...]:
    """The outputs to compute: those asked for, each one the model offers, or by default its primary one
    (the first of ``available``; ``predict`` for a model that names none)."""
    if method is None:
        return (available[0],) if available else ("predict",)
    wanted = (method,) if isinstance(method, str) else tuple(method)
    if available and (unknown := [m for m in wanted if m not in available]):
        raise BatchUsageError(
            f"the model has no output {', '.join(map(repr, unknown))}; it offers {', '.join(available)}."
        )
    return wanted


def rejects_format(path: str) -> TableFormat:
    """The table format of a rejects file: its extension's when it has one, else CSV. It must be a table,
    since each rejected row comes with its row number and reason."""
    try:
        fmt = format_for_path(path)
    except BatchUsageError:
        return format_for_path("rejects.csv")
    if not fmt.tabular:
        raise BatchUsageError(f"rejects file {path} must be CSV, Parquet or JSON Lines, not {fmt.name}.")
    return fmt
