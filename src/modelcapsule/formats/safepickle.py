"""``safepickle``: pickle protocol 5 read through the restricted unpickler, arrays out of band.

Large contiguous arrays leave the pickle stream as raw members (``model/buffers/NNNNNN.bin``), aligned
in the ZIP so they can be memory-mapped on load: an array-heavy model loads without copying, and
processes that load the same file share its pages. The pickle stream itself stays small, so scanning
it for globals (the audit) is cheap.
"""

from __future__ import annotations

import pickle
from typing import Any, ClassVar

from ..errors import CapsuleFormatError, LimitExceededError
from ..pickle_scan import scan_pickle
from ..trust import restricted_loads
from .base import LoadOptions, MemberSink, MemberSource, SaveResult

__all__ = ["SafePickleFormat"]

STREAM = "model/model.pkl"
OUT_OF_BAND_MIN_BYTES = 64 << 10
"""Buffers smaller than this stay in the pickle stream: a small array kept alive by the model (``classes_``)
must not pin the whole file's mapping, whose pages the hash check has touched."""


def buffer_member(index: int) -> str:
    return f"model/buffers/{index:06d}.bin"


class SafePickleFormat:
    """Pickle protocol 5 with out-of-band buffers, loaded only through the exact trust policy."""

    name: ClassVar[str] = "safepickle"
    runs_code: ClassVar[bool] = False
    safety: ClassVar[int] = 0
    extensions: ClassVar[tuple[str, ...]] = ()

    def supports(self, model: Any) -> bool:
        return True

    def save(self, model: Any, sink: MemberSink) -> SaveResult:
        buffers: list[pickle.PickleBuffer] = []

        def out_of_band(buf: pickle.PickleBuffer) -> bool:
            """False (out of band) for large buffers; True keeps a small one in the stream."""
            if buf.raw().nbytes < OUT_OF_BAND_MIN_BYTES:
                return True
            buffers.append(buf)
            return False

        stream = pickle.dumps(model, protocol=5, buffer_callback=out_of_band)
        sink.add(STREAM, stream)
        for i, buf in enumerate(buffers):
            sink.add(buffer_member(i), buf.raw())
        scan = scan_pickle(stream, what=STREAM)
        return SaveResult({"member": STREAM, "protocol": 5, "buffers": len(buffers)}, list(scan.globals))

    def audit(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> list[str]:
        member = str(details.get("member", STREAM))
        if source.size(member) > options.limits.max_pickle_size:
            raise LimitExceededError(f"the pickle stream {member!r}", source.size(member),
                                     options.limits.max_pickle_size, "max_pickle_size")
        scan = scan_pickle(source.view(member), what=member)
        expected = int(details.get("buffers", 0))
        if scan.out_of_band_buffers != expected:
            raise CapsuleFormatError(
                f"{member} uses {scan.out_of_band_buffers} out-of-band buffer(s) but the manifest lists {expected}."
            )
        return list(scan.globals)

    def load(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> Any:
        member = str(details.get("member", STREAM))
        buffers = [source.view(buffer_member(i)) for i in range(int(details.get("buffers", 0)))]
        return restricted_loads(source.view(member), options.policy, buffers=buffers, source=member)


FORMATS = (SafePickleFormat(),)
