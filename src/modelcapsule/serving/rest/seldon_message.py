"""Seldon Core's v1 message (SeldonMessage), read and written for the two routes that take it.

Shapes follow Seldon Core's "external prediction API": a request ``{"data": {"names", "ndarray" |
"tensor"}}``; the answer carries the class probabilities when the model has them (``names`` are the
class labels), else the predictions, in the same encoding the request used (``ndarray`` or ``tensor``
{shape, values}); errors are a ``status`` object with ``reason: MICROSERVICE_BAD_DATA``.

Seldon's own route (``/api/v1.0/predictions``, in :mod:`.seldon`) and the ``/predict`` route it shares
with the plain recipe (in :mod:`.plain`) both use this module, so that the adapters never import each
other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.responses import Response

from .. import schemas
from ..errors import InvalidRequestError, Status
from ..models import LoadedVersion
from ..transport import Decoded, Inference
from .common import json_response, to_list
from .tabular import from_rows

__all__ = ["ERROR_SCHEMA", "SeldonRequest", "answer_schema", "error", "request_schema"]

ERROR_SCHEMA = {
    "type": "object",
    "properties": {"status": {"type": "object", "properties": {
        "code": {"type": "integer"}, "info": {"type": "string"}, "reason": {"type": "string"},
        "status": {"const": "FAILURE"}}, "required": ["code", "info", "reason", "status"]}},
    "required": ["status"],
}


def request_schema(loaded: LoadedVersion) -> dict[str, Any]:
    """Seldon's message for ``loaded``: ``data.ndarray`` rows (``names``: the DataFrame's columns, in
    order). ``data.tensor`` {shape, values} is also taken."""
    spec = loaded.signature.inputs[0] if loaded.signature and loaded.signature.inputs else None
    data: dict[str, Any] = {"type": "object", "required": ["ndarray"]}
    if spec is not None:
        data["properties"] = {"ndarray": schemas.batch(spec), "names": {"type": ["array", "null"]}}
        if spec.columns is not None:
            data["properties"]["names"] = {"enum": [None, [c.name for c in spec.columns]]}
    return {"type": "object", "properties": {"data": data}, "required": ["data"]}


def answer_schema(loaded: LoadedVersion) -> dict[str, Any]:
    """Seldon's answer: the class probabilities (``names``: the classes) or the predictions."""
    output = "predict_proba" if _has_proba(loaded) else None
    return {
        "type": "object",
        "properties": {
            "data": {"type": "object", "properties": {"names": {"type": "array", "items": {"type": "string"}},
                                                      "ndarray": schemas.output_values(loaded, output)},
                     "required": ["names"]},
            "meta": {"type": "object"},
        },
        "required": ["data", "meta"],
    }


def error(message: str, status: Status) -> Response:
    """Seldon's error answer."""
    return json_response(
        {
            "status": {
                "code": status.http_status,
                "info": message,
                "reason": "MICROSERVICE_BAD_DATA" if status.http_status < 500 else "MICROSERVICE_INTERNAL_ERROR",
                "status": "FAILURE",
            }
        },
        status.http_status,
    )


class SeldonRequest:
    """One Seldon request body: :meth:`decode` reads it for the resolved version, :meth:`answer` writes
    the reply in the encoding the request used."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.encoding = "ndarray"

    async def decode(self, loaded: LoadedVersion) -> Decoded:
        data = self.doc.get("data")
        if not isinstance(data, dict):
            raise InvalidRequestError("'data' must be an object with 'ndarray' or 'tensor' (and optional 'names').")
        names = data.get("names")
        if names is not None and not isinstance(names, list):
            raise InvalidRequestError("data.names must be a list of column names.")
        if "ndarray" in data:
            rows = data["ndarray"]
        elif "tensor" in data:
            tensor = data["tensor"]
            if (
                not isinstance(tensor, dict)
                or not isinstance(tensor.get("shape"), list)
                or not isinstance(tensor.get("values"), list)
            ):
                raise InvalidRequestError("data.tensor must be {'shape': [rows, cols], 'values': [...]}.")
            try:
                rows = np.asarray(tensor["values"], dtype=float).reshape(tensor["shape"]).tolist()
            except (ValueError, TypeError) as exc:
                raise InvalidRequestError(f"data.tensor values do not fit its shape: {exc}.") from None
            self.encoding = "tensor"
        else:
            raise InvalidRequestError("'data' needs 'ndarray' or 'tensor'.")
        output = "predict_proba" if _has_proba(loaded) else loaded.validator.output_names[0]
        return Decoded(from_rows(loaded, rows, names, "data.ndarray"), (output,), "data.ndarray")

    def answer(self, done: Inference) -> Response:
        loaded = done.loaded
        result = next(iter(done.outputs.values()))
        body: dict[str, Any] = {"names": [str(c) for c in loaded.classes or ()] if _has_proba(loaded) else []}
        if self.encoding == "tensor" and result.dtype.kind in "biuf":
            body["tensor"] = {"shape": list(result.shape), "values": result.ravel().tolist()}
        else:
            body["ndarray"] = to_list(result)
        return json_response({"data": body, "meta": {"requestPath": {loaded.name: loaded.version_text}}})


def _has_proba(loaded: LoadedVersion) -> bool:
    return "predict_proba" in loaded.validator.output_names and bool(loaded.classes)
