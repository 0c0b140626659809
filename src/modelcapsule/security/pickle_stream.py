"""Reading pickle and joblib streams without pickle's or joblib's own loaders.

A joblib file is a pickle stream in which every numpy array is replaced by a
``joblib.numpy_pickle.NumpyArrayWrapper`` object whose raw bytes follow it in the same file, right after
the wrapper's BUILD opcode (after a one-byte padding length and that many padding bytes, joblib >= 1.2).
Arrays of Python objects are instead written as a *nested* pickle stream at that place. The whole file
may be compressed (zlib, gzip, bz2, xz, lzma); decompression is held to ``Limits.max_compression_ratio``.

Every stream is read twice, by one reader with two kinds of globals:

* the dry run (:mod:`modelcapsule.security.pickle_dryrun`): every global is a stand-in, every call,
  BUILD and item change is held to the name's role, dtype and array states are checked, allocations are
  budgeted. A plain pickle runs through the C unpickler; a stream holding joblib arrays through the
  walker below, which skips array bytes. Audit stops here.
* the load, only once the dry run and the policy accepted the stream: the same bytes through the
  restricted unpickler (C for plain pickles, the walker for joblib files, arrays copied into fresh
  arrays whose size the dry run already checked). A refusal of the dry run is final: nothing falls back.
"""

from __future__ import annotations

import bz2
import io
import lzma
import math
import pickle
import pickletools
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..core.container import Limits
from ..errors import MALFORMED_PICKLE_ERRORS, CapsuleFormatError, LimitExceededError, UntrustedTypesError
from .pickle_dryrun import DryRun, global_name
from .pickle_scan import scan_pickle
from .pickle_values import dtype_facts
from .policy import RestrictedUnpickler, TrustPolicy, refuse_tampering, restricted_loads
from .tamper import GlobalsSnapshot

__all__ = ["JOBLIB_WRAPPER", "StreamAudit", "audit_stream", "compression_of", "load_stream"]

JOBLIB_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
"""The one joblib name this module reads itself; it is never imported, so it needs no trust."""

LEGACY_WRAPPERS = frozenset({
    "joblib.numpy_pickle.NDArrayWrapper", "joblib.numpy_pickle.ZNDArrayWrapper",
    "joblib.numpy_pickle_compat.NDArrayWrapper", "joblib.numpy_pickle_compat.ZNDArrayWrapper",
})
"""Wrappers of joblib < 0.10, which kept arrays in side files next to the pickle: not supported."""

_MAGIC = (
    (b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"), (b"]\x00\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"), (b"ZF", "zfile"), (b"x", "zlib"),
)
_WRAPPER_BYTES = re.compile(rb"NumpyArrayWrapper|NDArrayWrapper")
_IN_CHUNK = 1 << 20
_OUT_CHUNK = 8 << 20
_ARRAY_SUBCLASSES = ("numpy.ndarray", "numpy.memmap", "numpy.matrix")
_FORMAT_ERRORS = MALFORMED_PICKLE_ERRORS


class _NamesOnly(TrustPolicy):
    """Lists names and checks nothing else: for streams the caller wrote itself (a save) or whose code it
    already trusts. Never used to load."""

    def role(self, name: str) -> str | None:
        return "trusted"


_NAMES_ONLY = _NamesOnly(include_defaults=False)


@dataclass(frozen=True)
class StreamAudit:
    """What a pickle or joblib stream would import (main and nested streams), and how it is stored."""

    globals: tuple[str, ...]
    compression: str | None
    joblib: bool
    arrays: int


# ------------------------------------------------------------------------------------ decompression


def compression_of(head: bytes | memoryview) -> str | None:
    """The compression a joblib file uses, from its first bytes (None for a bare pickle)."""
    start = bytes(head[:8])
    for magic, kind in _MAGIC:
        if start.startswith(magic):
            return kind
    return None


def _decompressor(kind: str) -> Any:
    if kind == "zlib":
        return zlib.decompressobj()
    if kind == "gzip":
        return zlib.decompressobj(wbits=31)
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    if kind == "xz":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)


def decompress(data: memoryview, kind: str, limits: Limits, what: str) -> bytes:
    """Decompress ``data`` chunk by chunk, refusing to produce more than ``limits.max_member_size`` bytes or
    more than ``limits.max_compression_ratio`` times the compressed size (compression bombs)."""
    ratio_cap = max(len(data), 1) * limits.max_compression_ratio + (1 << 20)
    if kind in ("lz4", "zfile"):
        reason = ("lz4 needs a package outside the standard library" if kind == "lz4"
                  else "it was written by joblib < 0.9.3")
        raise CapsuleFormatError(
            f"{what} is a {kind}-compressed joblib file, which is not supported ({reason}). "
            "Re-save it with joblib.dump(..., compress=3) (zlib) or without compression."
        )
    dec = _decompressor(kind)
    out = bytearray()
    pos = 0
    try:
        while True:
            if kind in ("zlib", "gzip"):
                tail = dec.unconsumed_tail
                if not tail:
                    if pos >= len(data):
                        break
                    tail = data[pos:pos + _IN_CHUNK]
                    pos += len(tail)
                out += dec.decompress(tail, _OUT_CHUNK)
                done = dec.eof
            else:
                if dec.needs_input:
                    if pos >= len(data):
                        break
                    chunk: bytes | memoryview = data[pos:pos + _IN_CHUNK]
                    pos += len(chunk)
                else:
                    chunk = b""
                out += dec.decompress(chunk, max_length=_OUT_CHUNK)
                done = dec.eof
            if len(out) > limits.max_member_size:
                raise LimitExceededError(f"the decompressed size of {what}", len(out), limits.max_member_size,
                                         "max_member_size")
            if len(out) > ratio_cap:
                raise LimitExceededError(f"the decompressed size of {what} ({len(data):,} bytes compressed)",
                                         len(out), ratio_cap, "max_compression_ratio")
            if done:
                break
    except (zlib.error, OSError, EOFError, lzma.LZMAError) as exc:
        raise CapsuleFormatError(f"{what} is not a valid {kind} stream: {exc}") from None
    if not dec.eof:
        raise CapsuleFormatError(f"{what} ends in the middle of its {kind} stream: it is truncated.")
    if pos < len(data) or dec.unused_data:
        raise CapsuleFormatError(f"{what} has data after the end of its {kind} stream; refusing it.")
    return bytes(out)


# ------------------------------------------------------------------------------------ the walker


class _ViewFile:
    """A read-only file over a buffer, handing out zero-copy slices for array bytes."""

    def __init__(self, view: memoryview) -> None:
        self.view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
        self.pos = 0

    def remaining(self) -> int:
        return len(self.view) - self.pos

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int) -> None:
        self.pos = pos

    def take(self, n: int) -> memoryview:
        if n < 0 or n > self.remaining():
            short = n - self.remaining()
            raise CapsuleFormatError(f"the stream ends {short:,} byte(s) short of an array's data.")
        chunk = self.view[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def read(self, n: int = -1) -> bytes:
        n = self.remaining() if n is None or n < 0 else min(n, self.remaining())
        return self.take(n).tobytes()

    def readinto(self, buf: Any) -> int:
        target = memoryview(buf).cast("B")
        data = self.take(min(len(target), self.remaining()))
        target[:len(data)] = data
        return len(data)

    def readline(self) -> bytes:
        start = self.pos
        while self.pos < len(self.view):
            chunk = bytes(self.view[self.pos:self.pos + 4096])
            nl = chunk.find(b"\n")
            if nl >= 0:
                self.pos += nl + 1
                break
            self.pos += len(chunk)
        return self.view[start:self.pos].tobytes()


class _ArrayWrapper:
    """Stands in for joblib's NumpyArrayWrapper; its BUILD is handled by :class:`_JoblibUnpickler`."""

    def __init__(self, *args: Any) -> None:
        raise CapsuleFormatError("the stream builds a joblib array wrapper by calling it; joblib never does.")


class _JoblibUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with the restricted policy, reading joblib's arrays itself.

    The pure-Python unpickler is used because only it lets a subclass handle BUILD (as joblib's own
    reader does); its ``find_class`` is :class:`RestrictedUnpickler`'s, so the policy is one code path.
    """

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, file: _ViewFile, policy: TrustPolicy, *, source: str, limits: Limits,
                 run: DryRun | None) -> None:
        super().__init__(file, fix_imports=False)  # type: ignore[arg-type]
        self._file = file
        self._policy = policy
        self._source = source
        self._limits = limits
        self._run = run
        self._audit = run is not None
        self.names: dict[str, None] = {}
        self.arrays = 0
        self.handed_out = GlobalsSnapshot()  # RestrictedUnpickler.find_class records what it hands out

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if full == JOBLIB_WRAPPER:
            return _ArrayWrapper
        if full in LEGACY_WRAPPERS:
            raise CapsuleFormatError(_legacy_message(self._source, full))
        self.names.setdefault(full, None)
        if self._run is not None:
            return self._run.stub(full)
        return RestrictedUnpickler.find_class(self, module, name)  # type: ignore[arg-type]

    def persistent_load(self, pid: Any) -> Any:
        raise CapsuleFormatError(f"{self._source} uses persistent ids; refusing it.")

    def _load_build(self) -> None:
        stack: list[Any] = self.stack  # type: ignore[attr-defined]
        if len(stack) >= 2 and isinstance(stack[-2], _ArrayWrapper):
            state = stack.pop()
            stack.pop()
            self._check_frame_ended()
            stack.append(self._read_array(state))
        else:
            pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]

    dispatch[pickle.BUILD[0]] = _load_build

    def _check_frame_ended(self) -> None:
        frame = getattr(getattr(self, "_unframer", None), "current_frame", None)
        if frame is not None:
            here = frame.tell()
            end = frame.seek(0, io.SEEK_END)
            frame.seek(here)
            if here != end:
                raise CapsuleFormatError(
                    f"{self._source}: an array's bytes would start inside a pickle frame; joblib never "
                    "writes this."
                )

    def _subclass_name(self, subclass: Any) -> str:
        stand_in = global_name(subclass)
        if stand_in is not None:
            return stand_in
        if isinstance(subclass, type):
            return f"{subclass.__module__}.{subclass.__qualname__}"
        return repr(subclass)

    def _read_array(self, state: Any) -> Any:
        self.arrays += 1
        what = f"{self._source} (array #{self.arrays})"
        if not isinstance(state, dict):
            raise CapsuleFormatError(f"{what}: the array wrapper's state is not a dict.")
        shape, order, dtype = state.get("shape"), state.get("order"), state.get("dtype")
        subclass = self._subclass_name(state.get("subclass"))
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise CapsuleFormatError(f"{what}: invalid shape {shape!r}.")
        if self._run is not None:  # the dry run: a stand-in whose numpy state was checked field by field
            facts = dtype_facts(dtype)
            if facts is None:
                raise CapsuleFormatError(f"{what}: invalid dtype {dtype!r}: not a numpy dtype whose state was checked.")
            itemsize, has_object = facts[0], bool(facts[1] & 0x01)
        elif isinstance(dtype, np.dtype):
            itemsize, has_object = dtype.itemsize, dtype.hasobject
        else:
            raise CapsuleFormatError(f"{what}: invalid dtype {dtype!r}.")
        if order not in ("C", "F"):
            raise CapsuleFormatError(f"{what}: invalid order {order!r}.")
        if subclass not in _ARRAY_SUBCLASSES:
            raise CapsuleFormatError(f"{what}: arrays of class {subclass} are not supported.")
        count = math.prod(shape)
        if count > self._limits.max_array_elements:
            raise LimitExceededError(f"the number of elements of {what}", count,
                                     self._limits.max_array_elements, "max_array_elements")
        if self._run is not None:
            self._run.allocate(count * (8 if has_object else itemsize), f"array #{self.arrays}")
        if has_object:
            array = self._read_nested(what)
        else:
            if state.get("numpy_array_alignment_bytes") is not None:
                self._file.take(self._file.take(1)[0])
            nbytes = count * itemsize
            if nbytes > self._file.remaining():
                raise CapsuleFormatError(f"{what} claims {nbytes:,} bytes but the file holds only "
                                         f"{self._file.remaining():,} more: it is truncated or forged.")
            data = self._file.take(nbytes)
            if self._run is not None:
                return self._run.made_array(shape)
            flat = np.frombuffer(data, dtype=dtype, count=count).copy() if nbytes else np.empty(count, dtype)
            array = flat.reshape(shape[::-1]).T if order == "F" else flat.reshape(shape)
            if not flat.dtype.isnative:  # as joblib does: native byte order for compiled code
                array = array.astype(array.dtype.newbyteorder("="))
        if self._run is not None:
            return self._run.made_array(shape)
        if not isinstance(array, np.ndarray) or array.shape != shape:
            raise CapsuleFormatError(f"{what}: the nested stream does not hold an array of shape {shape}.")
        return np.asmatrix(array) if subclass == "numpy.matrix" else array

    def _read_nested(self, what: str) -> Any:
        start = self._file.tell()
        try:
            for op, _arg, _pos in pickletools.genops(self._file):  # type: ignore[arg-type]
                if op.name == "STOP":
                    break
        except ValueError as exc:
            raise CapsuleFormatError(f"{what}: the nested pickle of an object array is malformed: {exc}") \
                from None
        end = self._file.tell()
        if end - start > self._limits.max_pickle_size:
            raise LimitExceededError(f"the nested pickle of {what}", end - start,
                                     self._limits.max_pickle_size, "max_pickle_size")
        blob = self._file.view[start:end]
        nested_what = f"{what}, nested pickle"
        if self._audit:
            scan = scan_pickle(blob, what=nested_what, policy=self._policy, limits=self._limits)
            for name in scan.globals:
                self.names.setdefault(name, None)
            return None
        return restricted_loads(blob, self._policy, source=nested_what)  # scanned by the dry run


def _walk(view: memoryview, policy: TrustPolicy, source: str, limits: Limits,
          run: DryRun | None) -> tuple[_JoblibUnpickler, Any]:
    """Run the walker over a whole stream (a dry run when ``run`` is given); returns it and the object."""
    file = _ViewFile(view)
    unpickler = _JoblibUnpickler(file, policy, source=source, limits=limits, run=run)
    try:
        if run is not None:
            with run:
                result = unpickler.load()
                run.dtypes.finish()
        else:
            result = unpickler.load()
    except (UntrustedTypesError, CapsuleFormatError):
        raise
    except _FORMAT_ERRORS as exc:
        raise CapsuleFormatError(f"{source} could not be read: {type(exc).__name__}: {exc}") from None
    finally:
        refuse_tampering(unpickler.handed_out, source)
    if file.remaining():
        raise CapsuleFormatError(f"{source} has {file.remaining():,} byte(s) after its pickle stream; "
                                 "refusing it.")
    return unpickler, result


# ------------------------------------------------------------------------------------ entry points


def _plain(view: memoryview, what: str, limits: Limits) -> tuple[memoryview, str | None]:
    kind = compression_of(view)
    if kind is not None:
        view = memoryview(decompress(view, kind, limits, what))
    return view, kind


def _holds_joblib_arrays(view: memoryview) -> bool:
    """Whether the stream may hold joblib's inline arrays (then the walker, which can skip them, reads it).
    Any stream naming the wrapper goes there; the walker applies the same checks as the C dry run."""
    return _WRAPPER_BYTES.search(view) is not None


def _legacy_message(what: str, name: str) -> str:
    return (f"{what} was written by joblib < 0.10 ({name}), which stores arrays in side files; this layout is "
            "not supported. Load it once with joblib in an isolated environment you trust and re-save it with "
            "modelcapsule.")


def _audit(data: memoryview, kind: str | None, policy: TrustPolicy, what: str, limits: Limits) -> StreamAudit:
    if not _holds_joblib_arrays(data):
        return StreamAudit(scan_pickle(data, what=what, policy=policy, limits=limits).globals, kind, False, 0)
    run = DryRun(policy, what, size=len(data), limits=limits)
    walker, _stand_ins = _walk(data, policy, what, limits, run)
    return StreamAudit(tuple(walker.names), kind, True, walker.arrays)


def audit_stream(view: memoryview, *, what: str, limits: Limits, policy: TrustPolicy | None = None) -> StreamAudit:
    """Every global a pickle or joblib stream (compressed or not) would import, found without importing,
    with every call, change and allocation checked against ``policy`` (``None``: list names only)."""
    data, kind = _plain(view, what, limits)
    return _audit(data, kind, policy if policy is not None else _NAMES_ONLY, what, limits)


def load_stream(view: memoryview, policy: TrustPolicy, *, what: str, limits: Limits) -> Any:
    """Construct the object in a pickle or joblib stream: the dry run and the policy first, then the load."""
    data, kind = _plain(view, what, limits)
    report = _audit(data, kind, policy, what, limits)
    policy.check(report.globals, what)
    if not report.joblib:
        return restricted_loads(data, policy, source=what)
    _walker, result = _walk(data, policy, what, limits, None)
    return result
