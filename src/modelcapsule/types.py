"""The few types every part of modelcapsule shares: tensor specs, signatures and the Predictor protocol.

A :class:`Predictor` is the one interface between a loaded model and everything that calls it (the
server's protocol adapters, batch scoring, verification). Framework adapters implement it; nothing else
needs to know which framework is behind it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["ColumnSpec", "Predictor", "Signature", "TensorSpec"]


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a tabular (DataFrame) input: its name and numpy dtype string."""

    name: str
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


@dataclass(frozen=True)
class TensorSpec:
    """A named input or output: numpy dtype string (``"float64"``, ``"int64"``, ``"object"``, ...) and
    shape, where ``-1`` marks a free dimension (always the first one: the batch).

    ``columns`` is set for tabular inputs (a pandas DataFrame): the tensor is then a table whose columns
    may each have their own dtype, and ``dtype`` is the common dtype (``"object"`` when they differ).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    columns: tuple[ColumnSpec, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.columns is not None:
            out["columns"] = [c.to_dict() for c in self.columns]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        columns = data.get("columns")
        return cls(
            name=str(data["name"]),
            dtype=str(data["dtype"]),
            shape=tuple(int(d) for d in data["shape"]),
            columns=None if columns is None else tuple(ColumnSpec(str(c["name"]), str(c["dtype"])) for c in columns),
        )

    @property
    def np_dtype(self) -> np.dtype[Any]:
        return np.dtype(self.dtype)


@dataclass(frozen=True)
class Signature:
    """What a model takes and gives: ordered inputs, ordered outputs (one per prediction method, named
    after it: ``predict``, ``predict_proba``, ...), and the class labels of a classifier."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    classes: tuple[Any, ...] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }
        if self.classes is not None:
            out["classes"] = list(self.classes)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        classes = data.get("classes")
        return cls(
            inputs=tuple(TensorSpec.from_dict(t) for t in data.get("inputs", [])),
            outputs=tuple(TensorSpec.from_dict(t) for t in data.get("outputs", [])),
            classes=None if classes is None else tuple(classes),
        )

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)


@runtime_checkable
class Predictor(Protocol):
    """A loaded model, callable with named inputs.

    ``predict`` takes a mapping of input name to array-like (numpy arrays; for tabular models also a
    pandas DataFrame under the single input's name, or one 1-D array per column name) and returns a
    mapping of output name to numpy array, for the outputs named in ``outputs`` (default: the first
    output of the signature, the model's primary prediction). Rows are independent: the server may
    concatenate the inputs of several requests and split the outputs back.
    """

    @property
    def signature(self) -> Signature: ...

    def predict(
        self, inputs: Mapping[str, Any], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray[Any, Any]]: ...
