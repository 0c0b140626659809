"""Seldon Core's v1 prediction API: ``{"data": {"names", "ndarray" | "tensor"}}``.

Shapes follow Seldon Core's "external prediction API" (SeldonMessage): the answer carries the class
probabilities when the model has them (``names`` are the class labels), else the predictions, in the
same encoding the request used (``ndarray`` or ``tensor`` {shape, values}); errors are a ``status``
object with ``reason: MICROSERVICE_BAD_DATA``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..dataplane import DataPlane
from ..errors import InvalidRequestError, Status
from .common import Call, endpoint, json_response, read_json, to_list
from .tabular import from_rows

__all__ = ["error", "handle", "routes"]


def error(message: str, status: Status) -> Response:
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


async def handle(dataplane: DataPlane, request: Request, call: Call, doc: dict[str, Any]) -> Response:
    """Answer one Seldon request body (already parsed)."""
    call.model = dataplane.default_model(request.query_params.get("model"))
    loaded = dataplane.resolve(call.model)
    call.version = loaded.version_text
    data = doc.get("data")
    if not isinstance(data, dict):
        raise InvalidRequestError("'data' must be an object with 'ndarray' or 'tensor' (and optional 'names').")
    names = data.get("names")
    if names is not None and not isinstance(names, list):
        raise InvalidRequestError("data.names must be a list of column names.")
    if "ndarray" in data:
        rows, encoding = data["ndarray"], "ndarray"
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
        encoding = "tensor"
    else:
        raise InvalidRequestError("'data' needs 'ndarray' or 'tensor'.")
    inputs = from_rows(loaded, rows, names, "data.ndarray")
    has_proba = "predict_proba" in loaded.validator.output_names and loaded.classes
    output = "predict_proba" if has_proba else loaded.validator.output_names[0]
    result = (await dataplane.predict(loaded, inputs, (output,)))[output]
    out_names = [str(c) for c in loaded.classes] if has_proba and loaded.classes else []
    body: dict[str, Any] = {"names": out_names}
    if encoding == "tensor" and result.dtype.kind in "biuf":
        body["tensor"] = {"shape": list(result.shape), "values": result.ravel().tolist()}
    else:
        body["ndarray"] = to_list(result)
    return json_response({"data": body, "meta": {"requestPath": {call.model: call.version}}})


def routes(dataplane: DataPlane) -> list[BaseRoute]:
    """``/api/v1.0/predictions`` (``/predict`` is shared with the plain recipe, see ``plain``)."""
    limit = dataplane.options.max_body_bytes

    async def predictions(request: Request, call: Call) -> Response:
        return await handle(dataplane, request, call, await read_json(request, limit))

    return [Route("/api/v1.0/predictions", endpoint(dataplane, "seldon", error, predictions), methods=["POST"])]
