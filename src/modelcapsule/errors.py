"""Every exception modelcapsule raises.

Each error subclasses the builtin that best describes it, so callers who do not know modelcapsule can
still catch it, and each message says what went wrong *and what to do next*. Mapping errors to HTTP
status codes, gRPC codes and exit codes happens only at the edges (the server and the CLI).
"""

from __future__ import annotations

import pickle
import struct
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "CapsuleError",
    "CapsuleFormatError",
    "EnvironmentMismatchError",
    "EnvironmentMismatchWarning",
    "IntegrityError",
    "InvalidInputError",
    "LimitExceededError",
    "PackageDrift",
    "SignatureError",
    "UnsupportedModelError",
    "UntrustedCodeError",
    "UntrustedTypesError",
    "VerificationError",
]


class CapsuleError(Exception):
    """Base class of every modelcapsule error."""


class CapsuleFormatError(CapsuleError, ValueError):
    """The file is not a well-formed capsule or model file (corrupt, truncated, hostile or too new)."""


class LimitExceededError(CapsuleFormatError):
    """A resource cap (member size, compression ratio, array size, ...) was hit while reading a file.

    The message names the cap and the keyword that raises it: ``Limits(<name>=...)``.
    """

    def __init__(self, what: str, value: int, limit: int, knob: str) -> None:
        self.what, self.value, self.limit, self.knob = what, value, limit, knob
        super().__init__(
            f"{what} is {value:,}, over the limit of {limit:,}. If you trust this file, raise the cap with "
            f"limits=modelcapsule.Limits({knob}=...)."
        )


class InvalidInputError(CapsuleError, ValueError):
    """The input a model was called with is not one it takes (wrong shape, width or dtype; NaN or infinity
    where the model refuses them). A caller's mistake: servers answer it with a 4xx, never a 500."""


class IntegrityError(CapsuleError, ValueError):
    """A member's bytes do not match the hash recorded in the manifest, or a signature does not verify."""


class SignatureError(IntegrityError):
    """A capsule's detached signature is missing, malformed or made with another key."""


class UntrustedTypesError(CapsuleError, TypeError):
    """The file would import names that the trust policy does not admit.

    Nothing was imported or executed. ``names`` lists every offending ``module.qualname``.
    """

    def __init__(self, names: Iterable[str], source: str = "the file") -> None:
        self.names = sorted(set(names))
        listed = "\n".join(f"  - {n}" for n in self.names)
        as_list = ", ".join(repr(n) for n in self.names)
        flags = " ".join(f"--trust {n}" for n in self.names)
        super().__init__(
            f"{source} would import {len(self.names)} name(s) outside the trust policy:\n{listed}\n"
            "Nothing was imported or run. Loading it could execute arbitrary code. If you trust where it "
            "came from and have checked these names with `capsule audit`, pass "
            f"trusted=[{as_list}] to modelcapsule.load (or {flags} on the command line)."
        )


class UntrustedCodeError(UntrustedTypesError):
    """The payload's format runs code from the file at load (cloudpickle) and ``trust_code`` was not set."""

    def __init__(self, format_name: str, source: str = "the file") -> None:
        self.names = [f"<code in a {format_name} payload>"]
        self.format_name = format_name
        TypeError.__init__(
            self,
            f"{source} is stored as {format_name!r}, whose loading runs code contained in the file itself; "
            "no allowlist can make that safe. Nothing was loaded. If you trust where this file came from, "
            "load it with trust_code=True; better, re-save the model in a safe format (capsule advise).",
        )


class UnsupportedModelError(CapsuleError, TypeError):
    """No registered framework or format knows how to handle this object or file."""


@dataclass(frozen=True)
class PackageDrift:
    """One package whose installed version differs from the one the capsule was saved with."""

    name: str
    saved: str | None
    installed: str | None

    def __str__(self) -> str:
        return f"{self.name} {self.saved or 'absent'} → {self.installed or 'not installed'}"


def _drift_lines(drifts: Sequence[PackageDrift]) -> str:
    return "\n".join(f"  - {d}" for d in drifts)


class EnvironmentMismatchError(CapsuleError, RuntimeError):
    """The runtime environment differs from the one the capsule was saved in (``on_mismatch="error"``)."""

    def __init__(self, drifts: Sequence[PackageDrift]) -> None:
        self.drifts = list(drifts)
        super().__init__(
            "the capsule was saved in a different environment (saved → installed):\n"
            f"{_drift_lines(self.drifts)}\n"
            "Install the saved versions (`capsule env PATH` prints them), or load with "
            'on_mismatch="warn" to accept the drift once the golden sample still verifies.'
        )


class EnvironmentMismatchWarning(UserWarning):
    """The runtime environment differs from the one the capsule was saved in (``on_mismatch="warn"``)."""

    def __init__(self, drifts: Sequence[PackageDrift]) -> None:
        self.drifts = list(drifts)
        super().__init__(
            "the capsule was saved in a different environment (saved → installed):\n"
            f"{_drift_lines(self.drifts)}\n"
            'The golden sample is re-checked on load; pass on_mismatch="ignore" to silence this warning.'
        )


class VerificationError(CapsuleError, AssertionError):
    """The reloaded model does not reproduce the golden sample recorded at save time."""

    def __init__(self, method: str, detail: str) -> None:
        self.method, self.detail = method, detail
        super().__init__(
            f"the loaded model's {method}() differs from the outputs recorded at save time:\n{detail}\n"
            "The environment may have changed in a way that alters predictions (see the drift report), or "
            "the payload was altered. Re-create the saved environment or re-train and save the model again; "
            "pass verify=False only if you accept different predictions."
        )


MALFORMED_PICKLE_ERRORS: tuple[type[BaseException], ...] = (
    pickle.PickleError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
    MemoryError, RecursionError, ImportError, UnicodeDecodeError, struct.error,
    SystemError,  # numpy's internal argument checks, reached by malformed dtype or array state
)
"""Builtin exceptions a malformed pickle stream can raise from the unpickler or the trusted constructors
it calls; readers turn them into :class:`CapsuleFormatError`."""


def warn_drift(drifts: Sequence[PackageDrift]) -> None:
    """Emit one :class:`EnvironmentMismatchWarning` for ``drifts``, attributed to the caller of ``load``."""
    warnings.warn(EnvironmentMismatchWarning(drifts), stacklevel=4)
