"""``pickle``: plain pickle files (``.pkl``, ``.pickle``) and pickle payloads, read only through the
restricted unpickler.

Saving writes pickle protocol 5 with every buffer in band (one member, readable by ``pickle.load``
anywhere). Loading scans the stream for globals, checks them against the trust policy, then unpickles
with the restricted unpickler. Many ``.pkl`` files in the wild are really joblib dumps; those are
recognised and read by the same joblib reader as the ``joblib`` format, never by joblib itself.
"""

from __future__ import annotations

import pickle
from typing import Any, ClassVar

from ..core.container import DEFAULT_LIMITS
from ..errors import LimitExceededError
from ..security.pickle_stream import audit_stream, load_stream
from .base import LoadOptions, MemberSink, MemberSource, SaveResult

__all__ = ["PickleFormat", "member_of"]

STREAM = "model/model.pkl"


def member_of(details: dict[str, Any], default: str) -> str:
    """The payload member named in the manifest's format details (or a plain file's only member)."""
    return str(details.get("member", default))


def check_size(source: MemberSource, member: str, options: LoadOptions) -> None:
    """Refuse a stream larger than ``Limits.max_pickle_size`` before reading it."""
    size = source.size(member)
    if size > options.limits.max_pickle_size:
        raise LimitExceededError(f"the pickle stream {member!r}", size, options.limits.max_pickle_size,
                                 "max_pickle_size")


class PickleFormat:
    """Plain pickle, interoperable with ``pickle.load``; loaded only through the exact trust policy."""

    name: ClassVar[str] = "pickle"
    runs_code: ClassVar[bool] = False
    safety: ClassVar[int] = 20
    extensions: ClassVar[tuple[str, ...]] = (".pkl", ".pickle")

    def supports(self, model: Any) -> bool:
        return True

    def save(self, model: Any, sink: MemberSink) -> SaveResult:
        stream = pickle.dumps(model, protocol=5)
        sink.add(STREAM, stream)
        report = audit_stream(memoryview(stream), what=STREAM, limits=DEFAULT_LIMITS)
        return SaveResult({"member": STREAM, "protocol": 5}, list(report.globals))

    def audit(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> list[str]:
        member = member_of(details, STREAM)
        check_size(source, member, options)
        return list(audit_stream(source.view(member), what=member, limits=options.limits,
                                 policy=options.policy).globals)

    def load(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> Any:
        member = member_of(details, STREAM)
        check_size(source, member, options)
        return load_stream(source.view(member), options.policy, what=member, limits=options.limits)


FORMATS = (PickleFormat(),)
