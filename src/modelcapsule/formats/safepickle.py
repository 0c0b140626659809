"""``safepickle``: pickle protocol 5 read through the restricted unpickler, arrays out of band.

Large contiguous arrays leave the pickle stream as raw members (``model/buffers/NNNNNN.bin``), aligned
in the ZIP so they can be memory-mapped on load: an array-heavy model loads without copying, and
processes that load the same file share its pages. The pickle stream itself stays small, so scanning
it for globals (the audit) is cheap.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any, ClassVar

from ..errors import CapsuleFormatError, LimitExceededError
from ..security.pickle_scan import scan_pickle
from ..security.policy import restricted_loads
from .base import LoadOptions, MemberSink, MemberSource, SaveResult

__all__ = ["SafePickleFormat"]

STREAM = "model/model.pkl"
OUT_OF_BAND_MIN_BYTES = 64 << 10
"""Buffers smaller than this stay in the pickle stream: a small array kept alive by the model (``classes_``)
must not pin the whole file's mapping, whose pages the hash check has touched."""


BUFFERS = "model/buffers.bin"
"""All out-of-band buffers, each starting on a 64-byte boundary; the manifest lists their ``[offset, size]``."""
ALIGN = 64


def buffer_member(index: int) -> str:
    """One member per buffer: the layout of capsules whose manifest gives ``buffers`` as a count."""
    return f"model/buffers/{index:06d}.bin"


def _pack(buffers: list[pickle.PickleBuffer]) -> tuple[bytearray, list[list[int]]]:
    spans, offset = [], 0
    for buf in buffers:
        size = buf.raw().nbytes
        spans.append([offset, size])
        offset += size + (-size) % ALIGN
    packed = bytearray(offset)
    for buf, (start, size) in zip(buffers, spans, strict=True):
        packed[start : start + size] = buf.raw()
    return packed, spans


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
        details: dict[str, Any] = {"member": STREAM, "protocol": 5, "buffers": 0}
        if buffers:
            packed, spans = _pack(buffers)
            sink.add(BUFFERS, memoryview(packed))
            details.update(buffers=spans, buffers_member=BUFFERS)
        scan = scan_pickle(stream, what=STREAM)  # names only: the model is the caller's own
        return SaveResult(details, list(scan.globals))

    def audit(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> list[str]:
        member = str(details.get("member", STREAM))
        if source.size(member) > options.limits.max_pickle_size:
            raise LimitExceededError(f"the pickle stream {member!r}", source.size(member),
                                     options.limits.max_pickle_size, "max_pickle_size")
        sizes = [size for _start, size in self._spans(source, details)]  # sizes only: the dry run needs no bytes
        scan = scan_pickle(source.view(member), what=member, policy=options.policy, limits=options.limits,
                           extra_size=sum(sizes))
        expected = len(sizes)
        if scan.out_of_band_buffers != expected:
            raise CapsuleFormatError(
                f"{member} uses {scan.out_of_band_buffers} out-of-band buffer(s) but the manifest lists {expected}."
            )
        return list(scan.globals)

    def load(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> Any:
        """Construct the model. The loader (``load.construct``) always runs :meth:`audit` first, which is
        the dry run that checks every call, change and allocation; this only unpickles what it accepted."""
        member = str(details.get("member", STREAM))
        buffers = self._buffers(source, details)
        return restricted_loads(source.view(member), options.policy, buffers=buffers, source=member)

    @classmethod
    def _buffers(cls, source: MemberSource, details: dict[str, Any]) -> Iterator[memoryview]:
        """Views of the out-of-band buffers, each checked to lie inside its member (now), handed to the
        unpickler one at a time as it asks for them. From a capsule whose buffers member the hash thread is
        still reading, each comes as soon as its span has arrived: the build overlaps the read."""
        spec = details.get("buffers", 0)
        if isinstance(spec, int) and not isinstance(spec, bool) and spec >= 0:
            return iter([source.view(buffer_member(i)) for i in range(spec)])
        spans = cls._spans(source, details)
        member = str(details.get("buffers_member", BUFFERS))
        as_read = getattr(source, "view_as_read", None)  # a capsule reader; other sources hold every byte
        if as_read is None:
            whole = source.view(member)
            return iter([whole[start : start + size] for start, size in spans])
        whole, arrived = as_read(member)

        def each() -> Iterator[memoryview]:
            for start, size in spans:
                arrived(start + size)
                yield whole[start : start + size]

        return each()

    @staticmethod
    def _spans(source: MemberSource, details: dict[str, Any]) -> list[tuple[int, int]]:
        """``(start, size)`` of each out-of-band buffer, checked against the member's size without reading
        it (one member per buffer: start 0 and the member's size)."""
        spec = details.get("buffers", 0)
        if isinstance(spec, int) and not isinstance(spec, bool) and spec >= 0:
            return [(0, source.size(buffer_member(i))) for i in range(spec)]
        if not isinstance(spec, list):
            raise CapsuleFormatError(f"the manifest's 'buffers' entry is malformed: {spec!r}")
        member = str(details.get("buffers_member", BUFFERS))
        whole = source.size(member)
        spans = []
        for span in spec:
            if (not isinstance(span, list) or len(span) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in span)
                    or span[0] + span[1] > whole):
                raise CapsuleFormatError(
                    f"the manifest lists a buffer span {span!r} outside {BUFFERS} ({whole} bytes)."
                )
            spans.append((span[0], span[1]))
        return spans


FORMATS = (SafePickleFormat(),)
