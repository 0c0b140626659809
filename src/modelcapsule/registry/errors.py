"""The registry's errors. Each subclasses :class:`~modelcapsule.errors.CapsuleError` and the builtin that
describes it, and says what to do next. The REST server maps them to HTTP statuses, the CLI to exit codes
(see :data:`HTTP_STATUS`), nowhere else."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import CapsuleError

__all__ = [
    "HTTP_STATUS",
    "AliasNotFoundError",
    "AuthenticationError",
    "ConflictError",
    "ModelNotFoundError",
    "PermissionDeniedError",
    "RegistryError",
    "SchemaOutdatedError",
    "VersionNotFoundError",
]


class RegistryError(CapsuleError):
    """Base class of every registry error."""

    code = "registry_error"


class ModelNotFoundError(RegistryError, LookupError):
    """No model of that name; the message lists the closest names."""

    code = "model_not_found"

    def __init__(self, name: str, close: Sequence[str] = ()) -> None:
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else (
            " `capsule models` lists the registered models.")
        super().__init__(f"no model named {name!r} in this registry.{hint}")
        self.name, self.close = name, list(close)


class VersionNotFoundError(RegistryError, LookupError):
    code = "version_not_found"


class AliasNotFoundError(RegistryError, LookupError):
    code = "alias_not_found"


class ConflictError(RegistryError, ValueError):
    """The request contradicts the registry's state (delete of an aliased version, nothing to roll back...)."""

    code = "conflict"


class AuthenticationError(RegistryError, PermissionError):
    """No token, or a token the registry does not know (HTTP 401)."""

    code = "unauthenticated"


class PermissionDeniedError(RegistryError, PermissionError):
    """The caller's role is too weak for this action; the message names the role needed (HTTP 403)."""

    code = "forbidden"

    def __init__(self, action: str, needed: str, have: str) -> None:
        super().__init__(f"{action} needs the {needed!r} role; this caller has {have!r}. Ask an admin for a token "
                         f"with `capsule registry token create NAME --role {needed}`.")
        self.needed, self.have = needed, have


class SchemaOutdatedError(RegistryError, RuntimeError):
    """The database was created by an older modelcapsule; it is never migrated silently."""

    code = "schema_outdated"

    def __init__(self, location: str, current: str | None, head: str) -> None:
        super().__init__(
            f"the registry database at {location} is at schema revision {current or 'none'}, this modelcapsule "
            f"needs {head}. Back it up, then run: capsule registry upgrade --registry {location}")
        self.current, self.head = current, head


HTTP_STATUS: dict[str, int] = {
    ModelNotFoundError.code: 404, VersionNotFoundError.code: 404, AliasNotFoundError.code: 404,
    ConflictError.code: 409, AuthenticationError.code: 401, PermissionDeniedError.code: 403,
    SchemaOutdatedError.code: 503, RegistryError.code: 400,
}
"""The HTTP status of each error code, shared by the server (to answer) and the client (to raise back)."""


def _core_errors() -> list[tuple[type[BaseException], str, int]]:
    from ..errors import (
        CapsuleFormatError,
        EnvironmentMismatchError,
        IntegrityError,
        UnsupportedModelError,
        UntrustedTypesError,
        VerificationError,
    )

    return [(UntrustedTypesError, "untrusted_types", 422), (IntegrityError, "integrity", 422),
            (VerificationError, "verification_failed", 422), (CapsuleFormatError, "capsule_format", 422),
            (EnvironmentMismatchError, "environment_mismatch", 422), (UnsupportedModelError, "unsupported_model", 422),
            (FileNotFoundError, "not_found", 404), (ValueError, "bad_request", 400)]


def to_wire(exc: BaseException) -> tuple[int, str, str] | None:
    """``(HTTP status, code, message)`` of an error the REST API reports, or None for an unexpected one."""
    if isinstance(exc, RegistryError):
        return HTTP_STATUS.get(exc.code, 400), exc.code, str(exc)
    for cls, code, status in _core_errors():
        if isinstance(exc, cls):
            return status, code, str(exc)
    return None


def from_wire(status: int, code: str, message: str) -> Exception:
    """The exception the HTTP client raises for an error response: the same class the server raised."""
    registry_classes: dict[str, type[RegistryError]] = {cls.code: cls for cls in (
        ModelNotFoundError, VersionNotFoundError, AliasNotFoundError, ConflictError, AuthenticationError,
        PermissionDeniedError, SchemaOutdatedError, RegistryError)}
    core = {code_: cls for cls, code_, _ in _core_errors()}
    cls: type[BaseException] = registry_classes.get(code) or core.get(code) or RegistryError
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    if status == 403 and isinstance(exc, PermissionDeniedError):
        exc.needed, exc.have = "", ""
    return exc  # type: ignore[return-value]
