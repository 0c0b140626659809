"""The V2 gRPC servicer over the data plane, and the ``grpc.aio`` server that runs it.

``ModelInfer`` converts the request to a :meth:`DataPlane.infer` call and its answer back, and maps
the data plane's typed errors to gRPC status codes; it imports no HTTP framework. Inputs come as
``raw_input_contents`` (one little-endian buffer per input, decoded as numpy views, no copy) or typed
``contents``; outputs always go back as ``raw_output_contents``, the form Triton's and KServe's clients
read by default.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from ..auth import GRPC_HEALTH
from ..dataplane import DataPlane
from ..errors import InvalidRequestError, ModelFailedError, ServingError
from ..models import LoadedVersion
from ..transport import Call, Decoded, new_request_id
from ..v2_codec import decode_binary, decode_data, encode_binary, model_metadata, output_datatype, server_metadata
from . import grpc_service_pb2 as pb
from . import grpc_service_pb2_grpc as pb_grpc

__all__ = ["InferenceServicer", "TlsFiles", "start_grpc_server"]

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


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """``inference.GRPCInferenceService`` answered from a :class:`DataPlane`."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=self.dataplane.live())

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    async def ModelReady(self, request: Any, context: Any) -> Any:
        try:
            self.dataplane.resolve(request.name, request.version or None)
        except ServingError:  # unknown, not loaded or failed: not ready, as Triton answers
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        meta = server_metadata()
        return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"], extensions=meta["extensions"])

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        try:
            loaded = self.dataplane.resolve(request.name, request.version or None)
            meta = model_metadata(loaded, self.dataplane.version_list(self.dataplane.entry(loaded.name)))
        except ServingError as exc:
            await context.abort(grpc.StatusCode[exc.status.value], str(exc))
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[tensor(**t) for t in meta["inputs"]],
            outputs=[tensor(**t) for t in meta["outputs"]],
        )

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        call = Call("grpc", request.id or new_request_id())
        remaining = context.time_remaining()
        if remaining is not None:  # the client's deadline
            call.deadline = time.monotonic() + remaining

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
            await context.abort(grpc.StatusCode[exc.status.value], str(exc))
        except Exception:
            log.exception("gRPC request %s failed", call.request_id)
            await context.abort(grpc.StatusCode.INTERNAL, str(ModelFailedError(call.request_id)))
        raise AssertionError("unreachable")  # context.abort raises

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


class _TokenCheck(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls without an accepted bearer token in the ``authorization`` metadata (health calls
    exempt unless the tokens protect them too)."""

    def __init__(self, tokens: Any) -> None:
        self.tokens = tokens

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        if not self.tokens.protect_health and details.method in GRPC_HEALTH:
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        try:
            self.tokens.check(metadata.get("authorization"))
        except ServingError as exc:
            code, message = grpc.StatusCode[exc.status.value], str(exc)

            async def refuse(request: Any, context: Any) -> Any:
                await context.abort(code, message)

            return grpc.unary_unary_rpc_method_handler(refuse)
        return await continuation(details)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of the server's certificate chain and key, and (mutual TLS) the CA its clients' certificates
    must chain to."""

    cert: Path
    key: Path
    client_ca: Path | None = None


async def start_grpc_server(dataplane: DataPlane, host: str, port: int, *, shared: bool = False,
                            max_calls: int | None = None, tls: TlsFiles | None = None) -> grpc.aio.Server:
    """Start serving V2 gRPC on ``host:port`` (in the running event loop); returns the server.

    ``shared``: several workers listen on the port (``SO_REUSEPORT``); otherwise a port already in use
    is an error rather than silently shared with whatever holds it."""
    limit = dataplane.options.max_body_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", max(limit, 64 << 20)),
            ("grpc.so_reuseport", 1 if shared else 0),
        ],
        maximum_concurrent_rpcs=max_calls,
        interceptors=[_TokenCheck(dataplane.options.tokens)] if dataplane.options.tokens is not None else None,
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(dataplane), server)  # type: ignore[no-untyped-call]
    try:
        if tls is None:
            bound = server.add_insecure_port(f"{host}:{port}")
        else:
            credentials = grpc.ssl_server_credentials(
                [(tls.key.read_bytes(), tls.cert.read_bytes())],
                root_certificates=tls.client_ca.read_bytes() if tls.client_ca else None,
                require_client_auth=tls.client_ca is not None,
            )
            bound = server.add_secure_port(f"{host}:{port}", credentials)
    except RuntimeError:  # grpcio reports a port in use this way
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port} (in use?); choose another --grpc-port or --no-grpc")
    await server.start()
    log.info("V2 gRPC listening on %s:%d", host, bound)
    return server
