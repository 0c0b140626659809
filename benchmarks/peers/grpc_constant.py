"""Two V2 gRPC endpoints that answer every ``ModelInfer`` with the same prebuilt response: the floors.

    python -m benchmarks.peers.grpc_constant aio PORT      # grpcio's asyncio server, as capsule serve runs it
    python -m benchmarks.peers.grpc_constant frames PORT   # bare HTTP/2 framing on uvloop: a lower bound

``aio`` is grpcio's ``grpc.aio`` server with capsule serve's options on a uvloop loop, its handler
registered for ``/inference.GRPCInferenceService/ModelInfer`` the way the generated code registers ours:
the request is parsed (the generated class) and a prebuilt one-row answer returned. No data plane, no
model: what grpcio's server itself costs a call here.

``frames`` is *not* a server: an asyncio protocol that reads HTTP/2 frames and answers every request
stream with three prebuilt frames (response headers, the gRPC message, ``grpc-status: 0`` trailers). It
decodes no header (no HPACK), keeps no stream state, enforces no limit and acknowledges SETTINGS and
PING only; it only shows how little of a call's cost is the HTTP/2 wire format itself, i.e. the lower
bound of a transport written for unary gRPC on the event loop. grpcio's client reads its answers.
"""

from __future__ import annotations

import asyncio
import struct
import sys
from typing import Any

from modelcapsule.serving.grpc.http2 import (
    ACK,
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PING,
    PREFACE,
    SETTINGS,
    WINDOW_UPDATE,
    frame,
    literal_field,
)

ANSWER_ROWS = 1


def answer() -> bytes:
    """The serialized ``ModelInferResponse`` both endpoints send: one INT64 prediction for model ``forest``."""
    from modelcapsule.serving.grpc import grpc_service_pb2 as pb

    tensor = pb.ModelInferResponse.InferOutputTensor(name="predict", datatype="INT64", shape=[ANSWER_ROWS])
    message = pb.ModelInferResponse(model_name="forest", model_version="1", outputs=[tensor],
                                    raw_output_contents=[b"\0" * 8 * ANSWER_ROWS])  # fmt: skip
    raw: bytes = message.SerializeToString()
    return raw


async def serve_aio(port: int) -> None:
    import grpc

    from modelcapsule.serving.grpc import grpc_service_pb2 as pb

    raw = answer()
    response = pb.ModelInferResponse.FromString(raw)

    async def infer(request: Any, context: Any) -> Any:
        return response

    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20),
            ("grpc.so_reuseport", 0),
        ]
    )
    handler = grpc.unary_unary_rpc_method_handler(
        infer,
        request_deserializer=pb.ModelInferRequest.FromString,
        response_serializer=pb.ModelInferResponse.SerializeToString,
    )
    server.add_registered_method_handlers("inference.GRPCInferenceService", {"ModelInfer": handler})
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


_STATUS_200 = b"\x88"  # HPACK static table entry 8: ":status: 200"
_RESPONSE_HEADERS = _STATUS_200 + literal_field(b"content-type", b"application/grpc")
_TRAILERS = literal_field(b"grpc-status", b"0")


class FramesProtocol(asyncio.Protocol):
    """Answers every request stream that ends with DATA by the same three frames (see the module docstring):
    after the client preface, whole frames; SETTINGS and PING acknowledged, everything a read asks for
    written in one call."""

    def __init__(self, message: bytes) -> None:
        self.message = b"\0" + struct.pack(">I", len(message)) + message
        self.buffer = bytearray()
        self.preface_seen = False
        self.transport: Any = None
        self.unacknowledged = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(frame(SETTINGS, 0, 0))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.preface_seen:
            if len(buffer) < len(PREFACE):
                return
            del buffer[: len(PREFACE)]
            self.preface_seen = True
        out: list[bytes] = []
        pos, end = 0, len(buffer)
        while end - pos >= 9:
            length = int.from_bytes(buffer[pos : pos + 3], "big")
            if end - pos < 9 + length:
                break
            kind, flags = buffer[pos + 3], buffer[pos + 4]
            stream = int.from_bytes(buffer[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            payload = bytes(buffer[pos + 9 : pos + 9 + length])
            pos += 9 + length
            if kind in (SETTINGS, PING):
                if not flags & ACK:
                    out.append(frame(kind, ACK, 0, payload if kind == PING else b""))
            elif kind == DATA:
                self.unacknowledged += len(payload)
                if flags & END_STREAM:
                    out += (frame(HEADERS, END_HEADERS, stream, _RESPONSE_HEADERS),
                            frame(DATA, 0, stream, self.message),
                            frame(HEADERS, END_HEADERS | END_STREAM, stream, _TRAILERS))  # fmt: skip
        del buffer[:pos]
        if self.unacknowledged > 16384:  # give the client's connection window back
            out.append(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self.unacknowledged)))
            self.unacknowledged = 0
        if out:
            self.transport.write(b"".join(out))


async def serve_frames(port: int) -> None:
    message = answer()
    server = await asyncio.get_running_loop().create_server(lambda: FramesProtocol(message), "127.0.0.1", port)
    await server.serve_forever()


def main(argv: list[str]) -> None:
    import uvloop

    kind, port = argv[0], int(argv[1])
    uvloop.run(serve_aio(port) if kind == "aio" else serve_frames(port))


if __name__ == "__main__":
    main(sys.argv[1:])
