"""Bearer tokens for ``capsule serve --token-file``: who may call the inference and admin routes.

The file holds one token per line (blank lines and ``#`` comments are skipped); only their SHA-256
digests are kept in memory, and a presented token is compared with every digest in constant time. A
request without ``Authorization: Bearer TOKEN`` is refused with 401, one with a token the file does not
list with 403, each in its protocol's own error shape (gRPC: ``UNAUTHENTICATED`` / ``PERMISSION_DENIED``
from the ``authorization`` metadata). Health routes (``/v2/health/live|ready``, ``/ping``, ``/health``,
gRPC ``ServerLive`` and ``ServerReady``) are exempt unless ``protect_health``, so that load balancers and
orchestrators can probe without a secret. With no token file nothing is checked and nothing is spent.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from .errors import PermissionDeniedError, UnauthenticatedError

__all__ = ["GRPC_HEALTH", "HEALTH_PATHS", "Tokens"]

HEALTH_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/ping", "/health"})
GRPC_HEALTH = frozenset({"/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady"})


@dataclass(frozen=True, eq=False)
class Tokens:
    """The accepted tokens (as digests) and whether health routes need one too."""

    digests: tuple[bytes, ...]
    protect_health: bool = False

    @classmethod
    def from_file(cls, path: str | Path, *, protect_health: bool = False) -> Tokens:
        """Read ``path``; an unreadable or empty file is an error that names it."""
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the token file {path}: {exc}") from None
        tokens = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not tokens:
            raise ValueError(f"the token file {path} lists no token (one per line); refusing to serve without one.")
        return cls(tuple(hashlib.sha256(t.encode()).digest() for t in tokens), protect_health)

    def exempt(self, path: str) -> bool:
        return not self.protect_health and path in HEALTH_PATHS

    def check(self, authorization: str | None) -> None:
        """Accept ``Authorization: Bearer TOKEN`` for a listed token; raise 401 or 403 otherwise."""
        if not authorization:
            raise UnauthenticatedError("this server needs a bearer token: send 'Authorization: Bearer TOKEN'.")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthenticatedError("the Authorization header must be 'Bearer TOKEN'.")
        digest = hashlib.sha256(token.strip().encode()).digest()
        accepted = False
        for known in self.digests:  # every digest compared, in constant time
            accepted |= hmac.compare_digest(digest, known)
        if not accepted:
            raise PermissionDeniedError("this token is not accepted by this server.")
