"""Builders for hostile capsules and model files, shared by the security tests.

Everything here is generated at test time; nothing is downloaded. Capsules are built with the real
:class:`CapsuleWriter` and a manifest whose hashes are correct, so that the check under test (not the
hash check) is what has to stop them. Raw ZIPs are written with :mod:`zipfile` when the point is a
container the writer would never produce (duplicates, ``..`` names, bombs).
"""

from __future__ import annotations

import hashlib
import json
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelcapsule.core.container import CapsuleWriter
from modelcapsule.core.manifest import CAPSULE_VERSION, MANIFEST_NAME, Manifest
from modelcapsule.errors import CapsuleFormatError, UntrustedTypesError

CANARY_NAME = "PWNED"
"""The file every code-running payload would create (in the directory the test gives it)."""


def manifest_for(files: Mapping[str, bytes], *, format_name: str = "safepickle",
                 details: Mapping[str, Any] | None = None, version: int = CAPSULE_VERSION,
                 **extra: Any) -> dict[str, Any]:
    """A manifest dictionary whose ``files`` hashes ``files`` correctly."""
    doc: dict[str, Any] = {
        "capsule_version": version,
        "name": "hostile",
        "created_at": "2026-01-01T00:00:00Z",
        "model": {"framework": "sklearn", "class": "sklearn.dummy.DummyClassifier", "task": "classification",
                  "methods": ["predict"], "params": {}},
        "format": {"name": format_name, "version": 1, **(details or {})},
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                  for name, data in sorted(files.items())},
        "signature": None,
        "environment": {"python": "3.11", "packages": {}},
        "provenance": {},
        "sample": None,
        "types": [],
        "metadata": {},
    }
    doc.update(extra)
    return doc


def build_capsule(path: Path, members: Mapping[str, bytes], *, layout: str = "zip", compress: bool = False,
                  format_name: str = "safepickle", details: Mapping[str, Any] | None = None) -> Path:
    """A well-formed capsule (correct hashes) holding ``members``, written by the real writer."""
    doc = manifest_for(members, format_name=format_name, details=details)
    manifest = Manifest(
        name=doc["name"], created_at=doc["created_at"], model=doc["model"], format=doc["format"], files={},
        signature=None, environment=doc["environment"],
    )
    with CapsuleWriter(path, layout=layout, compress=compress) as writer:
        for name, data in members.items():
            writer.add(name, data)
        writer.finish(manifest)
    return path


def raw_zip(path: Path, entries: Iterable[tuple[str, bytes]], *, deflate: bool = False) -> Path:
    """A ZIP written member by member exactly as given, duplicates and hostile names included."""
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", compression=method) as zf:
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicates we write on purpose
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            zf.writestr(info, data)
    return path


def raw_capsule_zip(path: Path, members: Mapping[str, bytes], *, deflate: bool = False,
                    manifest: Mapping[str, Any] | None = None,
                    extra_entries: Iterable[tuple[str, bytes]] = ()) -> Path:
    """A ZIP capsule with a correct manifest for ``members`` (or the given one) plus ``extra_entries``."""
    doc = manifest if manifest is not None else manifest_for(members)
    entries = [*members.items(), *extra_entries, (MANIFEST_NAME, json.dumps(doc).encode())]
    return raw_zip(path, entries, deflate=deflate)


# ------------------------------------------------------------------------------------- pickle assembly
# Pickles are written opcode by opcode (opcode bytes from the pickle protocol as documented in
# CPython's Lib/pickletools.py), never by pickling a live object, so each case is exactly the stream an
# attacker would write.

PROTO5 = b"\x80\x05"
PROTO2 = b"\x80\x02"
MARK, TUPLE, REDUCE, STOP, POP, BUILD = b"(", b"t", b"R", b".", b"0", b"b"
EMPTY_TUPLE, EMPTY_DICT, EMPTY_LIST, APPEND, SETITEM = b")", b"}", b"]", b"a", b"s"
STACK_GLOBAL, MEMOIZE, NEWOBJ, NEWOBJ_EX, OBJ = b"\x93", b"\x94", b"\x81", b"\x92", b"o"
NONE = b"N"


def text(value: str) -> bytes:
    """A string pushed with SHORT_BINUNICODE (or BINUNICODE when long)."""
    raw = value.encode()
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + len(raw).to_bytes(4, "little") + raw


def data(value: bytes) -> bytes:
    """Bytes pushed with SHORT_BINBYTES / BINBYTES."""
    if len(value) < 256:
        return b"C" + bytes([len(value)]) + value
    return b"B" + len(value).to_bytes(4, "little") + value


def integer(value: int) -> bytes:
    """A small non-negative int (BININT1/BININT) or any int via LONG1."""
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if -(2**31) <= value < 2**31:
        return b"J" + value.to_bytes(4, "little", signed=True)
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def glob(module: str, name: str) -> bytes:
    """GLOBAL: the text-mode opcode naming ``module name`` (any protocol)."""
    return b"c" + f"{module}\n{name}\n".encode()


def stack_glob(module: str, name: str) -> bytes:
    """STACK_GLOBAL: module and name pushed as strings first (protocol 4+)."""
    return text(module) + text(name) + STACK_GLOBAL


def tup(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def call(func: bytes, *args: bytes) -> bytes:
    """``func(*args)`` with REDUCE."""
    return func + tup(*args) + REDUCE


def stream(body: bytes, proto: bytes = PROTO5) -> bytes:
    """A complete pickle: protocol header, body, STOP."""
    return proto + body + STOP


def canary_path(directory: Path) -> Path:
    return directory / CANARY_NAME


def touch_payload(directory: Path) -> bytes:
    """A pickle that, loaded by plain ``pickle.loads``, runs ``os.system("touch <canary>")``."""
    return stream(call(glob("os", "system"), text(f"touch {canary_path(directory)}")))


# ---------------------------------------------------------------------------------------- ZIP surgery


def _central_entries(blob: bytes) -> Iterable[tuple[int, str]]:
    """(offset, name) of every central-directory record (signature PK\\x01\\x02; APPNOTE 4.3.12)."""
    pos = blob.find(b"PK\x01\x02")
    while pos != -1:
        name_len = int.from_bytes(blob[pos + 28 : pos + 30], "little")
        yield pos, blob[pos + 46 : pos + 46 + name_len].decode()
        pos = blob.find(b"PK\x01\x02", pos + 46 + name_len)


def patch_central(path: Path, name: str, *, size: int | None = None, csize: int | None = None,
                  flags: int | None = None,
                  method: int | None = None, rename: str | None = None) -> None:
    """Rewrite fields of ``name``'s central-directory record only (the local header keeps the truth)."""
    blob = bytearray(path.read_bytes())
    for pos, found in _central_entries(bytes(blob)):
        if found != name:
            continue
        if csize is not None:
            blob[pos + 20 : pos + 24] = csize.to_bytes(4, "little")
        if size is not None:
            blob[pos + 24 : pos + 28] = size.to_bytes(4, "little")
        if flags is not None:
            blob[pos + 8 : pos + 10] = flags.to_bytes(2, "little")
        if method is not None:
            blob[pos + 10 : pos + 12] = method.to_bytes(2, "little")
        if rename is not None:
            assert len(rename.encode()) == len(name.encode()), "renames keep the length"
            blob[pos + 46 : pos + 46 + len(name)] = rename.encode()
        path.write_bytes(bytes(blob))
        return
    raise KeyError(name)


def _local_header(name: bytes, data: bytes) -> bytes:
    """A stored-member local file header (APPNOTE 4.3.7)."""
    crc = zlib.crc32(data)
    return struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0x21, crc, len(data), len(data),
                       len(name), 0) + name


def _central_header(name: bytes, data: bytes, offset: int) -> bytes:
    """A stored-member central directory record (APPNOTE 4.3.12)."""
    crc = zlib.crc32(data)
    return struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, crc, len(data), len(data),
                       len(name), 0, 0, 0, 0, 0o644 << 16, offset) + name


def overlapping_zip(path: Path, members: Mapping[str, bytes], outer: str, inner: str, inner_data: bytes) -> Path:
    """A ZIP whose member ``outer`` contains the whole of member ``inner`` (its local header and data):
    two central-directory records point into the same bytes. This is how "better zip bombs" (Fifield,
    2019) multiply output without a high per-member ratio. Every hash in the manifest is correct."""
    inner_blob = _local_header(inner.encode(), inner_data) + inner_data
    contents = {**members, outer: inner_blob, inner: inner_data}
    manifest = json.dumps(manifest_for(contents)).encode()
    out = bytearray()
    central = bytearray()
    count = 0
    for name, blob in [*members.items(), (MANIFEST_NAME, manifest)]:
        central += _central_header(name.encode(), blob, len(out))
        out += _local_header(name.encode(), blob) + blob
        count += 1
    outer_offset = len(out)
    out += _local_header(outer.encode(), inner_blob)
    central += _central_header(outer.encode(), inner_blob, outer_offset)
    central += _central_header(inner.encode(), inner_data, len(out))
    out += inner_blob
    count += 2
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(central), len(out), 0)
    path.write_bytes(bytes(out + central + eocd))
    return path


# ------------------------------------------------------------------------------------- pickle payloads


def lst(*items: bytes) -> bytes:
    """A list built with EMPTY_LIST, MARK ... APPENDS."""
    return EMPTY_LIST + MARK + b"".join(items) + b"e"


def fragment(obj: Any, protocol: int = 3) -> bytes:
    """The opcodes that push ``obj`` (plain data only), without PROTO and STOP, for splicing."""
    import pickle

    raw = pickle.dumps(obj, protocol=protocol)
    assert raw[:2] == bytes([0x80, protocol]) and raw[-1:] == STOP
    return raw[2:-1]


@dataclass(frozen=True)
class PickleCase:
    """One hostile pickle: how to build it, what must refuse it, and which names the refusal shows.

    ``live`` says how the payload really runs outside modelcapsule (so the test of the refusal means
    something): ``"pickle"`` with ``pickle.loads``, ``"twice"`` with two successive ``pickle.load`` calls
    on one file (as joblib and torch do), ``"joblib"`` with ``joblib.load``, or ``""`` when it only
    tries to evade a scanner and would not run code by itself.
    """

    build: Callable[[Path], bytes]
    error: type[Exception]
    names: tuple[str, ...]
    live: str = "pickle"


def _cmd(d: Path) -> str:
    return f"touch {canary_path(d)}"


def _py(d: Path) -> str:
    return f"open({str(canary_path(d))!r}, 'w').close()"


def _os_system(d: Path) -> bytes:
    return call(glob("os", "system"), text(_cmd(d)))


def _getattr_call(target: bytes, attr: str, *args: bytes) -> bytes:
    """``getattr(target, attr)(*args)``."""
    return call(call(glob("builtins", "getattr"), target, text(attr)), *args)


def _code_object_args(source: str) -> bytes:
    """The arguments of ``types.CodeType(...)`` for ``source``, in this Python's order, as opcodes."""
    import inspect
    import types

    code = compile(source, "<payload>", "exec")
    params = [p for p in inspect.signature(types.CodeType).parameters]
    names = {"codestring": "co_code", "constants": "co_consts", "names": "co_names", "varnames": "co_varnames",
             "filename": "co_filename", "name": "co_name", "qualname": "co_qualname",
             "firstlineno": "co_firstlineno", "linetable": "co_linetable", "exceptiontable": "co_exceptiontable",
             "freevars": "co_freevars", "cellvars": "co_cellvars", "lnotab": "co_lnotab"}
    values = tuple(getattr(code, names.get(p, f"co_{p}")) for p in params)
    return fragment(values)


def _joblib_poisoned(d: Path) -> bytes:
    """A joblib file whose NumpyArrayWrapper declares an object array: joblib then unpickles the bytes
    that follow with a plain pickle.load, and those bytes run os.system."""
    import io

    import joblib
    import numpy as np

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            import os

            return (os.system, (_cmd(d),))

    out = io.BytesIO()
    holder = np.empty(1, dtype=object)
    holder[0] = Payload()
    joblib.dump(holder, out)
    return out.getvalue()


def _cloudpickled_function(d: Path) -> bytes:
    """A function rebuilt by cloudpickle's own helpers, then called: cloudpickle's code path."""
    import cloudpickle

    code = f"lambda: __import__('os').system({_cmd(d)!r})"
    func = eval(code)
    return cloudpickle.dumps(func, protocol=3)[2:-1] + EMPTY_TUPLE + REDUCE


PICKLE_CASES: dict[str, PickleCase] = {
    # globals that run code
    "os.system": PickleCase(lambda d: stream(_os_system(d)), UntrustedTypesError, ("os.system",)),
    "posix.system": PickleCase(lambda d: stream(call(glob("posix", "system"), text(_cmd(d)))),
                               UntrustedTypesError, ("posix.system",)),
    "subprocess.Popen": PickleCase(
        lambda d: stream(call(glob("subprocess", "Popen"), lst(text("touch"), text(str(canary_path(d)))))),
        UntrustedTypesError, ("subprocess.Popen",)),
    "builtins.eval": PickleCase(lambda d: stream(call(glob("builtins", "eval"), text(_py(d)))),
                                UntrustedTypesError, ("builtins.eval",)),
    "builtins.exec": PickleCase(lambda d: stream(call(glob("builtins", "exec"), text(_py(d)))),
                                UntrustedTypesError, ("builtins.exec",)),
    "python2-alias-__builtin__.eval": PickleCase(
        lambda d: stream(call(glob("__builtin__", "eval"), text(_py(d))), PROTO2),
        UntrustedTypesError, ("__builtin__.eval",)),
    "runpy._run_code": PickleCase(lambda d: stream(call(glob("runpy", "_run_code"), text(_py(d)), EMPTY_DICT)),
                                  UntrustedTypesError, ("runpy._run_code",)),
    "pydoc.locate": PickleCase(lambda d: stream(call(call(glob("pydoc", "locate"), text("os.system")),
                                                     text(_cmd(d)))), UntrustedTypesError, ("pydoc.locate",)),
    "pkgutil.resolve_name": PickleCase(
        lambda d: stream(call(call(glob("pkgutil", "resolve_name"), text("os:system")), text(_cmd(d)))),
        UntrustedTypesError, ("pkgutil.resolve_name",)),
    "importlib.import_module": PickleCase(
        lambda d: stream(_getattr_call(call(glob("importlib", "import_module"), text("os")), "system",
                                       text(_cmd(d)))),
        UntrustedTypesError, ("importlib.import_module", "builtins.getattr")),
    "ctypes.CDLL": PickleCase(
        lambda d: stream(_getattr_call(call(glob("ctypes", "CDLL"), NONE), "system", data(_cmd(d).encode()))),
        UntrustedTypesError, ("ctypes.CDLL", "builtins.getattr")),
    "marshal.loads": PickleCase(
        lambda d: stream(call(call(glob("types", "FunctionType"),
                                   call(glob("marshal", "loads"),
                                        data(__import__("marshal").dumps(compile(_py(d), "<p>", "exec")))),
                                   call(glob("builtins", "globals"))))),
        UntrustedTypesError, ("marshal.loads", "types.FunctionType")),
    "types.CodeType": PickleCase(
        lambda d: stream(call(call(glob("types", "FunctionType"), glob("types", "CodeType") + _code_object_args(
            _py(d)) + REDUCE, call(glob("builtins", "globals"))))),
        UntrustedTypesError, ("types.CodeType", "types.FunctionType")),
    "functools.partial": PickleCase(
        lambda d: stream(call(call(glob("functools", "partial"), glob("os", "system"), text(_cmd(d))))),
        UntrustedTypesError, ("functools.partial", "os.system")),
    "operator.attrgetter": PickleCase(
        lambda d: stream(call(call(call(glob("operator", "attrgetter"), text("system")),
                                   call(glob("importlib", "import_module"), text("os"))), text(_cmd(d)))),
        UntrustedTypesError, ("operator.attrgetter",)),
    "operator.methodcaller": PickleCase(
        lambda d: stream(call(call(glob("operator", "methodcaller"), text("system"), text(_cmd(d))),
                              call(glob("importlib", "import_module"), text("os")))),
        UntrustedTypesError, ("operator.methodcaller",)),
    "getattr-chain": PickleCase(
        lambda d: stream(_getattr_call(call(glob("builtins", "__import__"), text("os")), "system", text(_cmd(d)))),
        UntrustedTypesError, ("builtins.getattr", "builtins.__import__")),
    "cloudpickle.subimport": PickleCase(
        lambda d: stream(_getattr_call(call(glob("cloudpickle.cloudpickle", "subimport"), text("os")), "system",
                                       text(_cmd(d)))),
        UntrustedTypesError, ("cloudpickle.cloudpickle.subimport",)),
    "cloudpickle-function-builders": PickleCase(
        lambda d: stream(_cloudpickled_function(d), b"\x80\x03"),
        UntrustedTypesError, ("cloudpickle.cloudpickle._make_function",)),
    # evasions
    "stack-global-from-memo": PickleCase(
        lambda d: stream(text("os") + MEMOIZE + text("system") + MEMOIZE + POP + POP + b"h\x00h\x01" + STACK_GLOBAL
                         + tup(text(_cmd(d))) + REDUCE),
        UntrustedTypesError, ("os.system",)),
    "stack-global-from-a-call": PickleCase(
        lambda d: stream(call(glob("builtins", "str"), text("os")) + text("system") + STACK_GLOBAL
                         + tup(text(_cmd(d))) + REDUCE),
        CapsuleFormatError, ("STACK_GLOBAL", "computed value")),
    "dotted-name-pathlib.os.system": PickleCase(
        lambda d: stream(stack_glob("pathlib", "os.system") + tup(text(_cmd(d))) + REDUCE),
        UntrustedTypesError, ("pathlib.os.system",)),
    "dotted-name-under-a-trusted-package": PickleCase(
        lambda d: stream(stack_glob("sklearn", "os.system") + tup(text(_cmd(d))) + REDUCE),
        UntrustedTypesError, ("sklearn.os.system",)),
    "INST": PickleCase(lambda d: stream(MARK + text(_cmd(d)) + b"ios\nsystem\n"),
                       UntrustedTypesError, ("os.system",)),
    "OBJ": PickleCase(lambda d: stream(MARK + glob("os", "system") + text(_cmd(d)) + OBJ),
                      UntrustedTypesError, ("os.system",)),
    "NEWOBJ_EX": PickleCase(
        lambda d: stream(glob("subprocess", "Popen") + tup(lst(text("touch"), text(str(canary_path(d)))))
                         + EMPTY_DICT + NEWOBJ_EX),
        UntrustedTypesError, ("subprocess.Popen",), live=""),
    "call-dropped-with-POP": PickleCase(lambda d: stream(_os_system(d) + POP + integer(1)),
                                        UntrustedTypesError, ("os.system",)),
    "concatenated-harmless-then-hostile": PickleCase(
        lambda d: stream(integer(1)) + stream(_os_system(d)), CapsuleFormatError, ("after its end",), live="twice"),
    "concatenated-hostile-then-harmless": PickleCase(
        lambda d: stream(_os_system(d)) + stream(integer(1)), CapsuleFormatError, ("after its end",)),
    "payload-before-an-invalid-opcode": PickleCase(
        lambda d: PROTO5 + _os_system(d) + POP + b"\xff\xfe" + STOP, CapsuleFormatError, ("malformed",)),
    "payload-before-a-truncated-string": PickleCase(
        lambda d: PROTO5 + _os_system(d) + POP + b"X\xff\xff\x00\x00abc", CapsuleFormatError, ("model.pkl",)),
    "payload-without-STOP": PickleCase(lambda d: PROTO5 + _os_system(d), CapsuleFormatError, ("STOP",)),
    "nested-pickle.loads": PickleCase(
        lambda d: stream(call(glob("pickle", "loads"), data(stream(_os_system(d))))),
        UntrustedTypesError, ("pickle.loads",)),
    "nested-_pickle.loads": PickleCase(
        lambda d: stream(call(glob("_pickle", "loads"), data(stream(_os_system(d))))),
        UntrustedTypesError, ("_pickle.loads",)),
    "extension-code-EXT1": PickleCase(lambda d: stream(b"\x82\xf0" + tup(text(_cmd(d))) + REDUCE),
                                      CapsuleFormatError, ("extension code 240",), live=""),
    "extension-code-EXT4": PickleCase(lambda d: stream(b"\x84\xff\xff\xff\x7f" + EMPTY_TUPLE + REDUCE),
                                      CapsuleFormatError, ("extension code",), live=""),
    "persistent-id": PickleCase(lambda d: stream(b"Pos.system\n" + POP + integer(1)),
                                CapsuleFormatError, ("persistent id",), live=""),
    "protocol-6": PickleCase(lambda d: stream(_os_system(d), b"\x80\x06"), CapsuleFormatError, ("protocol 6",),
                             live=""),
    "gzip-wrapped": PickleCase(lambda d: __import__("gzip").compress(stream(_os_system(d))),
                               CapsuleFormatError, ("model.pkl",), live=""),
    "zip-wrapped": PickleCase(lambda d: _zip_bytes({"archive/data.pkl": stream(_os_system(d))}),
                              CapsuleFormatError, ("model.pkl",), live=""),
    "joblib-poisoned-wrapper": PickleCase(_joblib_poisoned, CapsuleFormatError, ("model.pkl",), live="joblib"),
    "BUILD-on-a-trusted-class": PickleCase(
        lambda d: stream(glob("fractions", "Fraction") + tup(NONE, EMPTY_DICT + text("__repr__")
                                                               + glob("numpy", "sum") + SETITEM) + BUILD),
        CapsuleFormatError, ("modifies fractions.Fraction itself",), live=""),
    "SETITEMS-on-a-trusted-class-via-DUP-and-memo": PickleCase(
        lambda d: stream(glob("collections", "OrderedDict") + MEMOIZE + POP + b"h\x00" + b"2" + MARK
                         + text("x") + integer(1) + b"u" + POP + integer(1)),
        CapsuleFormatError, ("modifies collections.OrderedDict itself",), live=""),
}


def _zip_bytes(members: Mapping[str, bytes]) -> bytes:
    import io

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, blob in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), blob)
    return out.getvalue()
