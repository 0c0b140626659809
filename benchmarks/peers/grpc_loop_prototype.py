"""A prototype, not a server: V2 gRPC ``ModelInfer`` read off HTTP/2 on the event loop, answered by our servicer.

    python -m benchmarks.peers.grpc_loop_prototype CAPSULE GRPC_PORT HTTP_PORT   # needs the `hpack` package

What ``capsule serve`` would cost over gRPC if its transport were written for the event loop instead of
being grpcio's server: one process loads ``CAPSULE`` into a :class:`DataPlane` with the serving
benchmark's batching settings, serves V2 REST with ``capsule serve``'s own HTTP server on ``HTTP_PORT``
(so that it answers readiness checks), and reads HTTP/2 frames on ``GRPC_PORT`` with an asyncio
protocol on the same uvloop loop: request headers decoded with the ``hpack`` package (pure Python),
each request stream handed whole to :class:`InferenceServicer.ModelInfer`, the very call grpcio makes,
and its answer written as three frames. Everything a server owes its peers is missing: no flow control
on what it sends, no CONTINUATION, padding or priority, no limits, no TLS, only ``ModelInfer``; a
malformed frame can break it. It exists to measure, next to :mod:`benchmarks.grpc_floor`'s floors, how
much of the gap to V2 REST such a transport would close.
"""

from __future__ import annotations

import asyncio
import struct
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.peers.grpc_constant import (
    DATA,
    END_STREAM,
    HEADERS,
    SETTINGS,
    WINDOW_UPDATE,
    FrameReader,
    frame,
    literal,
)

_INITIAL_WINDOW_SIZE = 0x4
_WINDOW = 1 << 24
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_RESPONSE_HEADERS = b"\x88" + literal(b"content-type", b"application/grpc")  # static entry 8: ":status: 200"


class _Aborted(Exception):
    def __init__(self, code: Any, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class _Context:
    """What the servicer asks of grpcio's servicer context: the time left, and abort."""

    __slots__ = ("deadline",)

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline

    def time_remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    async def abort(self, code: Any, message: str) -> None:
        raise _Aborted(code, message)


class LoopGrpc(FrameReader):
    """One HTTP/2 connection (see the module docstring for all it does not do)."""

    def __init__(self, servicer: Any) -> None:
        import hpack

        super().__init__()
        self.servicer = servicer
        self.decoder = hpack.Decoder()
        self.streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        self.consumed = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        settings = struct.pack(">HI", _INITIAL_WINDOW_SIZE, _WINDOW)
        transport.write(frame(SETTINGS, 0, 0, settings) + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", _WINDOW)))

    def frame_received(self, kind: int, flags: int, stream: int, payload: bytes, out: list[bytes]) -> None:
        if kind == HEADERS:
            self.streams[stream] = (dict(self.decoder.decode(payload)), bytearray())
        elif kind == DATA:
            self.consumed += len(payload)
            open_stream = self.streams.get(stream)
            if open_stream is not None:
                open_stream[1].extend(payload)
                if flags & END_STREAM:
                    del self.streams[stream]
                    asyncio.get_running_loop().create_task(self._call(stream, *open_stream))

    def frames_done(self, out: list[bytes]) -> None:
        if self.consumed > _WINDOW // 2:
            out.append(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self.consumed)))
            self.consumed = 0

    async def _call(self, stream: int, headers: dict[str, str], body: bytearray) -> None:
        from modelcapsule.serving.grpc import grpc_service_pb2 as pb

        timeout = headers.get("grpc-timeout")
        deadline = None if not timeout else time.monotonic() + int(timeout[:-1]) * _TIMEOUT_UNITS[timeout[-1]]
        sid = struct.pack(">I", stream)
        try:
            request = pb.ModelInferRequest.FromString(bytes(body[5:]))
            message = (await self.servicer.ModelInfer(request, _Context(deadline))).SerializeToString()
            framed = b"\0" + struct.pack(">I", len(message)) + message
            trailers = literal(b"grpc-status", b"0")
            answer = (
                frame(HEADERS, 0x4, stream, _RESPONSE_HEADERS)
                + struct.pack(">I", len(framed))[1:] + bytes((DATA, 0)) + sid + framed
                + frame(HEADERS, 0x4 | END_STREAM, stream, trailers)
            )  # fmt: skip
        except _Aborted as exc:
            status = str(exc.code.value[0]).encode()
            answer = frame(HEADERS, 0x4 | END_STREAM, stream, _RESPONSE_HEADERS + literal(b"grpc-status", status))
        if not self.transport.is_closing():
            self.transport.write(answer)


async def _serve(capsule: Path, grpc_port: int, http_port: int) -> None:
    from benchmarks.serving.core import BATCH_SIZE, BATCH_WAIT_MS
    from modelcapsule.serving.config import ServerOptions
    from modelcapsule.serving.dataplane import DataPlane
    from modelcapsule.serving.grpc.service import InferenceServicer
    from modelcapsule.serving.metrics import ServingMetrics
    from modelcapsule.serving.repository import Repository
    from modelcapsule.serving.server import ServeSettings, bind_socket, http_server, limit_numeric_threads

    options = ServerOptions(batch_size=BATCH_SIZE, batch_wait_ms=BATCH_WAIT_MS)
    limit_numeric_threads(options.numeric_threads)
    plane = DataPlane(Repository([capsule], options), options=options, metrics=ServingMetrics())
    await plane.reconcile()
    servicer = InferenceServicer(plane)
    await asyncio.get_running_loop().create_server(lambda: LoopGrpc(servicer), "127.0.0.1", grpc_port)
    sock = bind_socket("127.0.0.1", http_port)
    await http_server(plane, ServeSettings(access_log=False)).serve(sockets=[sock])


def main(argv: list[str]) -> None:
    import uvloop

    uvloop.run(_serve(Path(argv[0]), int(argv[1]), int(argv[2])))


if __name__ == "__main__":
    main(sys.argv[1:])
