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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from modelcapsule.container import CapsuleWriter
from modelcapsule.manifest import CAPSULE_VERSION, MANIFEST_NAME, Manifest

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
