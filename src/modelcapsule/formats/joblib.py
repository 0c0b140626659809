"""``joblib``: joblib files (``.joblib``, compressed or not) and joblib payloads, read without joblib.

Saving uses ``joblib.dump`` (optionally compressed). Loading never calls joblib: the stream, its inline
array bytes and the nested pickles of object arrays are read by :mod:`..security.pickle_stream`, every global
checked against the trust policy first. Compressed files (zlib, gzip, bz2, xz, lzma) are recognised by
their first bytes and decompressed with the standard library under ``Limits.max_member_size``.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

from ..core.container import DEFAULT_LIMITS
from ..security.pickle_stream import audit_stream, load_stream
from .base import LoadOptions, MemberSink, MemberSource, SaveResult
from .pickle import member_of

__all__ = ["CompressedJoblibFormat", "JoblibFormat"]

STREAM = "model/model.joblib"


class JoblibFormat:
    """joblib's file layout, loaded only through the exact trust policy (no joblib code runs)."""

    name: ClassVar[str] = "joblib"
    runs_code: ClassVar[bool] = False
    safety: ClassVar[int] = 21
    extensions: ClassVar[tuple[str, ...]] = (
        ".joblib", ".joblib.gz", ".joblib.z", ".joblib.xz", ".joblib.lzma", ".joblib.bz2", ".jbl",
    )
    compress: ClassVar[int] = 0
    """zlib level used by :meth:`save` (0: uncompressed)."""

    def supports(self, model: Any) -> bool:
        return True

    def save(self, model: Any, sink: MemberSink) -> SaveResult:
        import joblib

        buffer = io.BytesIO()
        joblib.dump(model, buffer, compress=("zlib", self.compress) if self.compress else 0)
        data = buffer.getvalue()
        sink.add(STREAM, data)
        report = audit_stream(memoryview(data), what=STREAM, limits=DEFAULT_LIMITS)
        details: dict[str, Any] = {"member": STREAM}
        if report.compression:
            details["compression"] = report.compression
        return SaveResult(details, [n for n in report.globals if not n.startswith("joblib.")])

    def audit(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> list[str]:
        member = member_of(details, STREAM)
        return list(audit_stream(source.view(member), what=member, limits=options.limits,
                                 policy=options.policy).globals)

    def load(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> Any:
        member = member_of(details, STREAM)
        return load_stream(source.view(member), options.policy, what=member, limits=options.limits)


class CompressedJoblibFormat(JoblibFormat):
    """joblib with zlib level 3 (what ``joblib.dump(compress=3)`` writes). Not registered under its own
    name: it is read back by ``joblib``, which recognises compression from the file's first bytes."""

    compress: ClassVar[int] = 3


FORMATS = (JoblibFormat(),)
