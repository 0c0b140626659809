"""Errors the server raises while answering a request, each with the kind of failure it is.

The kind (:class:`Status`) is what the protocol adapters map to their own HTTP status, error shape and
gRPC code; nothing below the adapters knows about HTTP. Every message names the field at fault and the
value that was expected, so a client can fix its request without reading the server's log.
"""

from __future__ import annotations

import enum

from ..errors import CapsuleError

__all__ = [
    "DeadlineExceededError",
    "InvalidRequestError",
    "ModelFailedError",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "OverloadedError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ServingError",
    "Status",
    "UnauthenticatedError",
    "UnsupportedMethodError",
]


class Status(enum.Enum):
    """Failure kinds, named after the gRPC status codes every protocol maps from."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    UNAVAILABLE = "UNAVAILABLE"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    INTERNAL = "INTERNAL"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"

    @property
    def http_status(self) -> int:
        return _HTTP[self]


_HTTP = {
    Status.INVALID_ARGUMENT: 400,
    Status.NOT_FOUND: 404,
    Status.UNAVAILABLE: 503,
    Status.RESOURCE_EXHAUSTED: 413,
    Status.UNIMPLEMENTED: 501,
    Status.INTERNAL: 500,
    Status.DEADLINE_EXCEEDED: 504,
    Status.UNAUTHENTICATED: 401,
    Status.PERMISSION_DENIED: 403,
}


class ServingError(CapsuleError):
    """Base class of errors answered to a client; ``status`` says which kind of failure it is."""

    status = Status.INTERNAL


class InvalidRequestError(ServingError, ValueError):
    """The request is malformed or does not match the model's signature (a 4xx, never a 500)."""

    status = Status.INVALID_ARGUMENT


class ModelNotFoundError(ServingError, LookupError):
    """No model, version or label by that name is served."""

    status = Status.NOT_FOUND


class ModelNotReadyError(ServingError, RuntimeError):
    """The model exists but no version of it is available (still loading, or every version failed)."""

    status = Status.UNAVAILABLE


class PayloadTooLargeError(ServingError, ValueError):
    """The request body is larger than the server's configured limit."""

    status = Status.RESOURCE_EXHAUSTED


class UnsupportedMethodError(ServingError, TypeError):
    """The model cannot answer this kind of request (e.g. ``:classify`` on a regressor)."""

    status = Status.INVALID_ARGUMENT


class OverloadedError(ServingError, RuntimeError):
    """The model's queue is full (``max_queue``): the request was not queued; retry after ``retry_after``
    seconds (REST: 503 with ``Retry-After``; gRPC: UNAVAILABLE)."""

    status = Status.UNAVAILABLE

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceededError(ServingError, TimeoutError):
    """The request's deadline (gRPC deadline, REST ``X-Request-Timeout``) passed before the model ran it;
    it was never computed."""

    status = Status.DEADLINE_EXCEEDED


class UnauthenticatedError(ServingError, PermissionError):
    """No bearer token, or a malformed one (401)."""

    status = Status.UNAUTHENTICATED


class PermissionDeniedError(ServingError, PermissionError):
    """A bearer token this server does not accept (403)."""

    status = Status.PERMISSION_DENIED


class ModelFailedError(ServingError, RuntimeError):
    """The model itself raised while predicting; the message carries the request id the log shows."""

    status = Status.INTERNAL

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(
            f"the model failed on this request (request id {request_id}); the server log has the details "
            "under that id. The server keeps serving."
        )
