"""``cloudpickle``: lambdas and interactively defined code, the last resort.

cloudpickle stores functions *by value* (their bytecode), so loading one runs code carried by the file;
no allowlist can make that safe. The format is therefore refused at load unless the caller passes
``trust_code=True`` (the loader raises :class:`~modelcapsule.errors.UntrustedCodeError` first) and is
never chosen by ``format="auto"``. The audit still lists every global the stream names, for review.
"""

from __future__ import annotations

import pickle
from typing import Any, ClassVar

from ..security.pickle_scan import scan_pickle
from .base import LoadOptions, MemberSink, MemberSource, SaveResult
from .pickle import check_size, member_of

__all__ = ["CloudpickleFormat", "stream_globals"]

STREAM = "model/model.cloudpickle"


def stream_globals(source: MemberSource, details: dict[str, Any], options: LoadOptions) -> list[str]:
    """Every global the cloudpickle stream names (for review; trusting the code admits them all)."""
    member = member_of(details, STREAM)
    check_size(source, member, options)
    return list(scan_pickle(source.view(member), what=member).globals)


class CloudpickleFormat:
    """cloudpickle: stores code by value. Loading runs that code; only with ``trust_code=True``."""

    name: ClassVar[str] = "cloudpickle"
    runs_code: ClassVar[bool] = True
    safety: ClassVar[int] = 100
    extensions: ClassVar[tuple[str, ...]] = ()

    def supports(self, model: Any) -> bool:
        return True

    def save(self, model: Any, sink: MemberSink) -> SaveResult:
        import cloudpickle

        stream = cloudpickle.dumps(model, protocol=5)
        sink.add(STREAM, stream)
        return SaveResult({"member": STREAM, "protocol": 5}, list(scan_pickle(stream, what=STREAM).globals))

    def audit(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> list[str]:
        """With ``trust_code`` the caller accepts whatever the stream runs, so no name is left to check;
        without it the loader refuses before asking (the names are listed by :func:`stream_globals`)."""
        names = stream_globals(source, details, options)
        return [] if options.trust_code else names

    def load(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> Any:
        if not options.trust_code:  # the loader checks first; this keeps the format safe when called alone
            from ..errors import UntrustedCodeError

            raise UntrustedCodeError(self.name, member_of(details, STREAM))
        return pickle.loads(source.view(member_of(details, STREAM)))


FORMATS = (CloudpickleFormat(),)
