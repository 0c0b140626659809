"""The V2 gRPC servicer over the data plane: ``inference.GRPCInferenceService``'s methods.

``ModelInfer`` converts the request to a :meth:`DataPlane.infer` call and its answer back, and maps
the data plane's typed errors to gRPC status codes; it imports no HTTP framework and no gRPC library
(:mod:`.calls` and :mod:`.http2` carry the calls). Inputs come as ``raw_input_contents`` (one
little-endian buffer per input, decoded as numpy views, no copy) or typed ``contents``; outputs always
go back as ``raw_output_contents``, the form Triton's and KServe's clients read by default.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..dataplane import DataPlane
from ..errors import InvalidRequestError, ModelFailedError, ServingError
from ..models import LoadedVersion
from ..transport import Call, Decoded, new_request_id
from ..v2_codec import decode_binary, decode_data, encode_binary, model_metadata, output_datatype, server_metadata
from . import grpc_service_pb2 as pb
from .calls import Method, RpcError

__all__ = ["SERVICE", "InferenceServicer", "methods"]

SERVICE = "inference.GRPCInferenceService"

log = logging.getLogger("modelcapsule.serving")

_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def _typed_contents(tensor: Any, field: str) -> Any:
    attr = _CONTENTS.get(tensor.datatype)
    if attr is None:
        raise InvalidRequestError(
            f"{field} datatype {tensor.datatype!r} cannot be sent as typed contents; send raw_input_contents."
        )
    values = list(getattr(tensor.contents, attr))
    if tensor.datatype == "BYTES":
        return [v.decode("utf-8", "surrogateescape") for v in values]
    return values


class InferenceServicer:
    """``inference.GRPCInferenceService`` answered from a :class:`DataPlane`: each method takes the request
    message and the client's deadline (``time.monotonic()``, or None) and returns the response message or
    raises :class:`RpcError`."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    async def ServerLive(self, request: Any, deadline: float | None) -> Any:
        return pb.ServerLiveResponse(live=self.dataplane.live())

    async def ServerReady(self, request: Any, deadline: float | None) -> Any:
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    async def ModelReady(self, request: Any, deadline: float | None) -> Any:
        try:
            self.dataplane.resolve(request.name, request.version or None)
        except ServingError:  # unknown, not loaded or failed: not ready, as Triton answers
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, deadline: float | None) -> Any:
        meta = server_metadata()
        return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"], extensions=meta["extensions"])

    async def ModelMetadata(self, request: Any, deadline: float | None) -> Any:
        try:
            loaded = self.dataplane.resolve(request.name, request.version or None)
            meta = model_metadata(loaded, self.dataplane.version_list(self.dataplane.entry(loaded.name)))
        except ServingError as exc:
            raise RpcError.of(exc) from None
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[tensor(**t) for t in meta["inputs"]],
            outputs=[tensor(**t) for t in meta["outputs"]],
        )

    async def ModelInfer(self, request: Any, deadline: float | None) -> Any:
        call = Call("grpc", request.id or new_request_id())
        call.deadline = deadline

        async def decode(loaded: LoadedVersion) -> Decoded:
            return Decoded(self._inputs(request), [o.name for o in request.outputs])

        try:
            done = await self.dataplane.infer(call, decode, request.model_name, request.model_version or None)
            response = pb.ModelInferResponse(model_name=done.loaded.name, model_version=call.version, id=request.id)
            for name, arr in done.outputs.items():
                response.outputs.add(name=name, datatype=output_datatype(arr), shape=list(arr.shape))
                response.raw_output_contents.append(encode_binary(arr))
            return response
        except ServingError as exc:
            raise RpcError.of(exc) from None
        except Exception:
            log.exception("gRPC request %s failed", call.request_id)
            raise RpcError("INTERNAL", str(ModelFailedError(call.request_id))) from None

    @staticmethod
    def _inputs(request: Any) -> dict[str, np.ndarray[Any, Any]]:
        raw_contents = request.raw_input_contents
        if raw_contents and len(raw_contents) != len(request.inputs):
            raise InvalidRequestError(
                f"raw_input_contents has {len(raw_contents)} buffer(s) for {len(request.inputs)} input(s); "
                "send one per input, in order."
            )
        raw: dict[str, np.ndarray[Any, Any]] = {}
        for i, tensor in enumerate(request.inputs):
            field = f"input {tensor.name!r}"
            shape = tuple(int(d) for d in tensor.shape)
            if any(d < 0 for d in shape):
                raise InvalidRequestError(f"{field} shape {list(shape)} has a negative dimension.")
            if tensor.name in raw:
                raise InvalidRequestError(f"{field} is given twice.")
            if raw_contents:
                raw[tensor.name] = decode_binary(raw_contents[i], tensor.datatype, shape, field)
            else:
                raw[tensor.name] = decode_data(_typed_contents(tensor, field), tensor.datatype, shape, field)
        return raw


def methods(servicer: InferenceServicer) -> dict[bytes, Method]:
    """The service's methods by request path (``/inference.GRPCInferenceService/ModelInfer``...)."""
    table: dict[str, tuple[Any, Any]] = {
        "ServerLive": (pb.ServerLiveRequest, servicer.ServerLive),
        "ServerReady": (pb.ServerReadyRequest, servicer.ServerReady),
        "ModelReady": (pb.ModelReadyRequest, servicer.ModelReady),
        "ServerMetadata": (pb.ServerMetadataRequest, servicer.ServerMetadata),
        "ModelMetadata": (pb.ModelMetadataRequest, servicer.ModelMetadata),
        "ModelInfer": (pb.ModelInferRequest, servicer.ModelInfer),
    }
    return {f"/{SERVICE}/{name}".encode(): Method(message.FromString, call) for name, (message, call) in table.items()}
