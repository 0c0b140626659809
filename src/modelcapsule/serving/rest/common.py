"""What every protocol adapter shares: the endpoint wrapper, body reading and JSON encoding.

The wrapper is where typed errors become HTTP answers (each protocol passes its own error shape), where
an unexpected exception becomes a 500 carrying a request id that the log shows with the traceback, and
where metrics and the structured access log are recorded. Handlers stay small: parse, resolve, predict,
shape the answer.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..dataplane import DataPlane
from ..errors import InvalidRequestError, ModelFailedError, PayloadTooLargeError, ServingError, Status

__all__ = [
    "Call",
    "ErrorShape",
    "Handler",
    "endpoint",
    "json_response",
    "new_request_id",
    "read_body",
    "read_json",
    "to_list",
]

log = logging.getLogger("modelcapsule.serving")
access_log = logging.getLogger("modelcapsule.serving.access")

ErrorShape = Callable[[str, Status], Response]
"""Builds one protocol's error answer from a message and a failure kind."""


class _RequestIds:
    """Request ids unique across workers and restarts: a random per-process prefix and a counter.

    Cheaper than ``uuid4`` (no ``os.urandom`` call per request, which costs tens of microseconds and
    more under load), and no system call at all per request: the prefix is drawn again in a forked
    child (``os.register_at_fork``) so that workers never share ids."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._prefix = os.urandom(4).hex()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._redraw)

    def _redraw(self) -> None:
        self._prefix = os.urandom(4).hex()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):08x}"


new_request_id = _RequestIds().next
"""A fresh request id (used when the client sent no ``X-Request-Id``)."""


@dataclass
class Call:
    """One request as the wrapper tracks it: protocol, request id, and the model version it reached."""

    protocol: str
    request_id: str
    model: str = ""
    version: str = ""


Handler = Callable[[Request, Call], Awaitable[Response]]


class JSONBytes(Response):
    media_type = "application/json"


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer encoded with orjson (numpy scalars and arrays included)."""
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    return JSONBytes(body, status_code=status_code, headers=headers)


def to_list(arr: np.ndarray[Any, Any]) -> Any:
    """An output array as JSON-ready nested lists (bytes decoded as UTF-8)."""
    if arr.dtype.kind == "S":
        return np.char.decode(arr, "utf-8", "replace").tolist()
    if arr.dtype.kind == "O":
        return [to_list(x) if isinstance(x, np.ndarray) else _scalar(x) for x in arr]
    return arr.tolist()


def _scalar(x: Any) -> Any:
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    if isinstance(x, np.generic):
        return x.item()
    return x


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"the request body is {int(declared):,} bytes, over the server's limit of {limit:,} "
            "(raise it with --max-body-bytes)."
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(
                f"the request body is over the server's limit of {limit:,} bytes (raise it with --max-body-bytes)."
            )
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes | memoryview) -> Any:
    """Parse JSON bytes; malformed JSON is a 400 that says where it broke."""
    if not len(body):
        raise InvalidRequestError("the request body is empty; send a JSON object.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"the request body is not valid JSON: {exc}.") from None


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object (anything else is a 400)."""
    doc = parse_json(await read_body(request, limit))
    if not isinstance(doc, dict):
        raise InvalidRequestError(f"the request body must be a JSON object, not a {type(doc).__name__}.")
    return doc


def endpoint(
    dataplane: DataPlane, protocol: str, error: ErrorShape, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap ``handler`` with error mapping, request ids, metrics and the access log."""
    metrics = dataplane.metrics
    in_flight = metrics.in_flight.labels(protocol)
    children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}  # labelled metrics, looked up once

    def count(call: Call, status: int, elapsed: float) -> None:
        key = (call.model, call.version, call.protocol, status)
        pair = children.get(key)
        if pair is None:
            pair = children[key] = (metrics.requests.labels(call.model, call.version, call.protocol, str(status)),
                                    metrics.latency.labels(call.model, call.version, call.protocol))
        pair[0].inc()
        pair[1].observe(elapsed)

    async def wrapped(request: Request) -> Response:
        start = time.perf_counter()
        call = Call(protocol, request.headers.get("x-request-id") or new_request_id())
        in_flight.inc()
        try:
            response = await handler(request, call)
        except ServingError as exc:
            response = error(str(exc), exc.status)
        except Exception:
            log.exception("request %s (%s %s) failed", call.request_id, request.method, request.url.path)
            response = error(str(ModelFailedError(call.request_id)), Status.INTERNAL)
        finally:
            in_flight.dec()
        elapsed = time.perf_counter() - start
        response.headers["x-request-id"] = call.request_id
        if call.model in dataplane.models:  # never a label value taken from an unknown name in a URL
            count(call, response.status_code, elapsed)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                orjson.dumps(
                    {
                        "request_id": call.request_id,
                        "method": request.method,
                        "path": request.url.path,
                        "status": response.status_code,
                        "protocol": call.protocol,
                        "model": call.model,
                        "version": call.version,
                        "ms": round(elapsed * 1000, 3),
                        "client": request.client.host if request.client else None,
                    }
                ).decode()
            )
        return response

    return wrapped
