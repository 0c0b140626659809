"""What every REST protocol adapter shares: the protocol table entry, the endpoint wrapper, body
reading and JSON encoding.

The wrapper is where typed errors become HTTP answers (each protocol passes its own error shape), where
an unexpected exception becomes a 500 carrying a request id that the log shows with the traceback, and
where the structured access log is written. Inference handlers decode the body, call
:meth:`DataPlane.infer` once (which counts the request in the metrics) and encode its answer; the
wrapper counts the other requests (metadata, status, health) the same way.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ..dataplane import DataPlane
from ..errors import (
    InvalidRequestError,
    ModelFailedError,
    OverloadedError,
    PayloadTooLargeError,
    ServingError,
    Status,
)
from ..transport import Call, new_request_id

__all__ = [
    "Call",
    "ErrorShape",
    "Handler",
    "RestProtocol",
    "RouteFactory",
    "endpoint",
    "header",
    "json_response",
    "model_param",
    "parse_json",
    "read_body",
    "read_json",
    "set_header",
    "to_list",
]

log = logging.getLogger("modelcapsule.serving")
access_log = logging.getLogger("modelcapsule.serving.access")

ErrorShape = Callable[[str, Status], Response]
"""Builds one protocol's error answer from a message and a failure kind."""


Handler = Callable[[Request, Call], Awaitable[Response]]

RouteFactory = Callable[[DataPlane], Sequence[BaseRoute]]
"""Builds one protocol's routes for a data plane."""


@dataclass(frozen=True)
class RestProtocol:
    """One REST protocol adapter, as its module's ``PROTOCOLS`` table lists it: a name (the metrics'
    ``protocol`` label) and the function that builds its routes (:class:`~..openapi.ApiRoute` s)."""

    name: str
    routes: RouteFactory


class NameConvertor(Convertor[str]):
    """``{model:name}``: a path segment without ``:`` (TF Serving puts ``:predict`` right after the name)."""

    regex = "[^/:]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("name", NameConvertor())


class JSONBytes(Response):
    """An encoded JSON answer. Without extra headers its header list is written directly (the same
    ``content-length`` and ``content-type`` pair, in the same order, as Starlette's ``init_headers``):
    every inference answer is one, and Starlette's generic path costs about a microsecond more."""

    media_type = "application/json"

    def __init__(self, content: bytes, status_code: int = 200, headers: dict[str, str] | None = None) -> None:
        if headers is not None:
            super().__init__(content, status_code=status_code, headers=headers)
            return
        self.status_code = status_code
        self.background = None
        self.body = content
        if status_code < 200 or status_code in (204, 304):  # no content-length, as Starlette
            self.raw_headers = [_JSON_TYPE]
        else:
            self.raw_headers = [(b"content-length", str(len(content)).encode("latin-1")), _JSON_TYPE]


_JSON_TYPE = (b"content-type", b"application/json")
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer encoded with orjson (numpy scalars and arrays included)."""
    return JSONBytes(orjson.dumps(content, option=_JSON_OPTIONS), status_code, headers)


def header(request: Request, name: bytes) -> str | None:
    """The first value of the request header ``name`` (lower case), as Starlette's ``request.headers.get``
    gives it, without building the header mapping: a header that is absent (most of the ones the
    inference routes look for) costs no ``KeyError`` here."""
    key: bytes
    value: bytes
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def set_header(response: Response, name: bytes, value: str) -> None:
    """``response.headers[name] = value`` (``name`` in lower case): appended to the raw list when the
    response does not have it yet, which is the usual case and skips building ``MutableHeaders``."""
    raw = response.raw_headers
    for key, _ in raw:
        if key == name:
            response.headers[name.decode("latin-1")] = value
            return
    raw.append((name, value.encode("latin-1")))


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
    declared = header(request, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"the request body is {int(declared):,} bytes, over the server's limit of {limit:,} "
            "(raise it with --max-body-bytes)."
        )
    # The ASGI messages read directly, as Starlette's ``request.stream()`` reads them, without its
    # async generator (no handler reads the body a second time).
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLargeError(
                        f"the request body is over the server's limit of {limit:,} bytes (raise it with "
                        "--max-body-bytes)."
                    )
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif kind == "http.disconnect":
            raise InvalidRequestError("the client went away (or was too slow) before its body arrived.")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


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


def model_param(request: Request) -> str | None:
    """The model a route without one in its path is asked for: ``?model=NAME`` (given once, not empty),
    or None for the only served model."""
    if not request.scope["query_string"]:  # the usual case: no query, and no query mapping to build
        return None
    values = request.query_params.getlist("model")
    if not values:
        return None
    if len(values) > 1 or not values[0]:
        raise InvalidRequestError(f"give the model once, as ?model=NAME (got {values!r}).")
    return values[0]


TIMEOUT_HEADER = "x-request-timeout"
"""Seconds the client waits for the answer; a request still waiting for the model after that is never
computed (504)."""
_TIMEOUT = TIMEOUT_HEADER.encode()


def _deadline(value: str, start: float) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (seconds > 0 and math.isfinite(seconds)):
        raise InvalidRequestError(f"X-Request-Timeout must be a positive number of seconds, not {value!r}.")
    # Call.start is perf_counter time; deadlines are compared with time.monotonic()
    return time.monotonic() + seconds - (time.perf_counter() - start)


def endpoint(
    dataplane: DataPlane, protocol: str, error: ErrorShape, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap ``handler`` with error mapping, request ids, metrics and the access log."""

    tokens = dataplane.options.tokens

    async def wrapped(request: Request) -> Response:
        call = Call(protocol, header(request, b"x-request-id") or new_request_id())
        try:
            if tokens is not None and not tokens.exempt(request.scope["path"]):
                tokens.check(header(request, b"authorization"))
            timeout = header(request, _TIMEOUT)
            if timeout is not None:
                call.deadline = _deadline(timeout, call.start)
            response = await handler(request, call)
        except OverloadedError as exc:
            response = error(str(exc), exc.status)
            response.headers["retry-after"] = str(exc.retry_after)
        except ServingError as exc:
            response = error(str(exc), exc.status)
            if exc.status is Status.UNAUTHENTICATED:
                response.headers["www-authenticate"] = "Bearer"
        except Exception:
            log.exception("request %s (%s %s) failed", call.request_id, request.method, request.url.path)
            response = error(str(ModelFailedError(call.request_id)), Status.INTERNAL)
        set_header(response, b"x-request-id", call.request_id)
        if not call.counted:  # DataPlane.infer counts the inference requests it answers
            dataplane.record(call, response.status_code)
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
                        "ms": round((time.perf_counter() - call.start) * 1000, 3),
                        "client": request.client.host if request.client else None,
                    }
                ).decode()
            )
        return response

    return wrapped
