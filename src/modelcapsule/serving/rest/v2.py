"""Open Inference Protocol V2 over REST (KServe, Triton, MLServer clients), with the binary extension.

Routes and shapes follow the KServe Open Inference Protocol REST specification; the binary tensor data
extension follows Triton's ``binary_tensor_data`` extension: the header ``Inference-Header-Content-Length``
gives the size of the leading JSON, input parameters ``binary_data_size`` the size of each binary
tensor that follows it, and output parameters ``binary_data`` (or the request parameter
``binary_data_output``) ask for binary outputs, which are answered the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..dataplane import DataPlane
from ..errors import InvalidRequestError, ModelNotReadyError, Status
from ..models import LoadedVersion
from ..openapi import ApiRoute
from ..schemas import v2_infer_request, v2_infer_response
from ..transport import Decoded
from ..v2_codec import (
    decode_binary,
    decode_data,
    encode_binary,
    flat_list,
    model_metadata,
    output_datatype,
    requested,
    server_metadata,
    v2_shape,
)
from .common import Call, RestProtocol, endpoint, header, json_response, parse_json, read_body

__all__ = ["PROTOCOLS", "decode_inputs", "encode_outputs", "routes"]

HEADER_LENGTH = "inference-header-content-length"
_HEADER_LENGTH = HEADER_LENGTH.encode()
_NO_BYTES = memoryview(b"")
_TAG = "V2"
ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_TENSOR_META = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "datatype": {"type": "string"},
                   "shape": {"type": "array", "items": {"type": "integer"}}},
    "required": ["name", "datatype", "shape"],
}
_MODEL_META = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
                   "platform": {"type": "string"}, "inputs": {"type": "array", "items": _TENSOR_META},
                   "outputs": {"type": "array", "items": _TENSOR_META}},
    "required": ["name", "platform", "inputs", "outputs"],
}
_INFER_NOTE = (
    "Documented one row at a time (JSON Schema cannot tie `data` to `shape`); any number of rows is "
    "accepted, as is the binary tensor extension (`Inference-Header-Content-Length`)."
)


def _error(message: str, status: Status) -> Response:
    return json_response({"error": message}, status.http_status)


def decode_inputs(doc: dict[str, Any], binary: memoryview) -> tuple[dict[str, np.ndarray[Any, Any]], int]:
    """The request's input tensors by name, and how many binary bytes they used."""
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidRequestError("'inputs' must be a non-empty list of tensors {name, shape, datatype, data}.")
    raw: dict[str, np.ndarray[Any, Any]] = {}
    offset = 0
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise InvalidRequestError(f"inputs[{i}] must be an object {{name, shape, datatype, data}}.")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise InvalidRequestError(f"inputs[{i}].name must be a string.")
        field = f"input {name!r}"
        if name in raw:
            raise InvalidRequestError(f"{field} is given twice.")
        shape = v2_shape(tensor.get("shape"), f"{field} shape")
        datatype = tensor.get("datatype")
        if not isinstance(datatype, str):
            raise InvalidRequestError(f"{field} needs a 'datatype' string such as FP64 or INT64.")
        params = tensor.get("parameters") or {}
        if not isinstance(params, dict):
            raise InvalidRequestError(f"{field} parameters must be an object.")
        size = params.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(binary):
                raise InvalidRequestError(
                    f"{field} binary_data_size {size!r} does not fit the {len(binary) - offset} binary bytes left."
                )
            raw[name] = decode_binary(binary[offset : offset + size], datatype, shape, field)
            offset += size
        elif "data" in tensor:
            raw[name] = decode_data(tensor["data"], datatype, shape, field)
        else:
            raise InvalidRequestError(f"{field} has neither 'data' nor a binary_data_size parameter.")
    return raw, offset


def encode_outputs(
    result: dict[str, np.ndarray[Any, Any]], wanted: dict[str, bool]
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Output tensors (JSON or binary as asked) and the binary chunks to append after the JSON."""
    tensors: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, binary in wanted.items():
        arr = result[name]
        tensor: dict[str, Any] = {"name": name, "datatype": output_datatype(arr), "shape": list(arr.shape)}
        if binary:
            raw = encode_binary(arr)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = flat_list(arr)
        tensors.append(tensor)
    return tensors, chunks


_INFER_STATUSES = (400, 404, 413, 500, 503)
_READY = {"type": "object", "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
          "required": ["name", "ready"]}
_LIVE = {"type": "object", "properties": {"live": {"type": "boolean"}}, "required": ["live"]}
_READY_ALL = {"type": "object", "properties": {"ready": {"type": "boolean"}}, "required": ["ready"]}
_SERVER_META = {"type": "object", "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                                                 "extensions": {"type": "array", "items": {"type": "string"}}},
                "required": ["name", "version", "extensions"]}


def routes(dataplane: DataPlane) -> list[ApiRoute]:
    """The V2 REST routes, bound to ``dataplane``."""
    limit = dataplane.options.max_body_bytes

    def route(path: str, handler: Any, methods: list[str], summary: str, **kw: Any) -> ApiRoute:
        return ApiRoute(path, endpoint(dataplane, "v2", _error, handler), methods=methods, summary=summary, tag=_TAG,
                        **{"errors": ERROR_SCHEMA, **kw})

    async def server(request: Request, call: Call) -> Response:
        return json_response(server_metadata())

    async def live(request: Request, call: Call) -> Response:
        return json_response({"live": dataplane.live()}, 200 if dataplane.live() else 503)

    async def ready(request: Request, call: Call) -> Response:
        ok = dataplane.ready()
        return json_response({"ready": ok}, 200 if ok else 503)

    def resolve(request: Request, call: Call) -> LoadedVersion:
        name = request.path_params["model"]
        call.model = name
        loaded = dataplane.resolve(name, request.path_params.get("version"))
        call.version = loaded.version_text
        return loaded

    async def metadata(request: Request, call: Call) -> Response:
        loaded = resolve(request, call)
        return json_response(model_metadata(loaded, dataplane.version_list(dataplane.entry(loaded.name))))

    async def model_ready(request: Request, call: Call) -> Response:
        try:
            resolve(request, call)
        except ModelNotReadyError:
            return json_response({"name": request.path_params["model"], "ready": False}, 400)
        return json_response({"name": request.path_params["model"], "ready": True})

    async def infer(request: Request, call: Call) -> Response:
        doc: dict[str, Any] = {}
        asked: Sequence[dict[str, Any]] = ()
        binary_default = False

        async def decode(loaded: LoadedVersion) -> Decoded:
            nonlocal doc, asked, binary_default
            doc, raw = await _read_request(request, limit)
            params = doc.get("parameters") or {}
            if not isinstance(params, dict):
                raise InvalidRequestError("'parameters' must be an object.")
            binary_default = bool(params.get("binary_data_output", False))
            asked = requested(doc.get("outputs"))
            return Decoded(raw, [o["name"] for o in asked])

        path_params = request.path_params
        done = await dataplane.infer(call, decode, path_params["model"], path_params.get("version"))
        wanted = dict.fromkeys(done.outputs, binary_default)
        for o in asked:
            p = o.get("parameters") or {}
            wanted[o["name"]] = bool(p.get("binary_data", binary_default)) if isinstance(p, dict) else binary_default
        tensors, chunks = encode_outputs(done.outputs, wanted)
        answer: dict[str, Any] = {
            "model_name": done.loaded.name,
            "model_version": done.loaded.version_text,
            "outputs": tensors,
        }
        if "id" in doc:
            answer["id"] = doc["id"]
        if not chunks:
            return json_response(answer)
        head = orjson.dumps(answer)
        return Response(
            b"".join([head, *chunks]),
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(len(head))},
        )

    paths = []
    for prefix, which in (("/v2/models/{model}", "Model"), ("/v2/models/{model}/versions/{version}", "Model version")):
        paths += [
            route(prefix, metadata, ["GET"], f"{which} metadata", answer=_MODEL_META),
            route(prefix + "/ready", model_ready, ["GET"], f"{which} readiness", answer=_READY,
                  errors={"anyOf": [ERROR_SCHEMA, _READY]}),
            route(prefix + "/infer", infer, ["POST"], f"Inference on the {which.lower()} (JSON or binary tensors)",
                  request=v2_infer_request, answer=v2_infer_response, statuses=_INFER_STATUSES,
                  description=_INFER_NOTE),
        ]
    return [
        route("/v2", server, ["GET"], "Server metadata", answer=_SERVER_META, statuses=()),
        route("/v2/health/live", live, ["GET"], "Liveness", answer=_LIVE, statuses=(503,), errors=_LIVE,
              public=True),
        route("/v2/health/ready", ready, ["GET"], "Readiness", answer=_READY_ALL, statuses=(503,), public=True,
              errors=_READY_ALL),
        *paths,
    ]


async def _read_request(request: Request, limit: int) -> tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]]]:
    """The inference request's JSON part and its input tensors (JSON ``data`` or binary, after the JSON)."""
    body = await read_body(request, limit)
    length = header(request, _HEADER_LENGTH)
    if length is not None:
        if not length.isdigit() or int(length) > len(body):
            raise InvalidRequestError(
                f"{HEADER_LENGTH} {length!r} must be the byte length of the JSON part (body is {len(body)} bytes)."
            )
        split = int(length)
        view = memoryview(body)
        doc, binary = parse_json(view[:split]), view[split:]
    else:  # all JSON: parsed as it came, no views
        split = len(body)
        doc, binary = parse_json(body), _NO_BYTES
    if not isinstance(doc, dict):
        raise InvalidRequestError("the inference request must be a JSON object with 'inputs'.")
    if not isinstance(doc.get("id", ""), str):
        raise InvalidRequestError(f"'id' must be a string, not {doc['id']!r}.")
    raw, used = decode_inputs(doc, binary)
    if used != len(body) - split:
        raise InvalidRequestError(
            f"the body has {len(body) - split} binary bytes but the inputs' binary_data_size add up to {used}."
        )
    return doc, raw


PROTOCOLS = (RestProtocol("v2", routes),)
