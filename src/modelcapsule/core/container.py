"""Reading and writing the capsule container: a ZIP file or the same members in a directory.

Writing is atomic: members go to a temporary sibling, which is fsynced and renamed over the
destination, so a crash mid-save never leaves a half-written capsule where a good one was.

Reading goes through one strict parser: no absolute or ``..`` member names, no duplicates, no
symlinks, no member missing from the manifest (or listed but absent), size and compression-ratio caps.
Stored (uncompressed) members are memory-mapped copy-on-write, so large arrays cost no copy on load
and are shared between processes that load the same file.
"""

from __future__ import annotations

import hashlib
import itertools
import mmap
import os
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ..errors import CapsuleFormatError, IntegrityError, LimitExceededError
from .manifest import MANIFEST_NAME, SIGNATURE_NAME, FileEntry, Manifest, parse_manifest

__all__ = ["CapsuleReader", "CapsuleWriter", "Limits", "open_capsule", "sha256_of"]

ALIGNMENT = 64
"""Stored members start at a multiple of this offset in the ZIP file, so arrays mapped from it are aligned."""

_ALIGN_EXTRA_ID = 0xA11C  # a private ZIP extra-field id that only carries padding
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_CHUNK = 1 << 24


@dataclass(frozen=True)
class Limits:
    """Resource caps applied while reading a capsule or model file. Raise one only for files you trust."""

    max_member_size: int = 16 << 30
    """Largest single member, uncompressed (bytes)."""
    max_total_size: int = 64 << 30
    """Sum of all members, uncompressed (bytes)."""
    max_members: int = 100_000
    """Number of members."""
    max_compression_ratio: int = 200
    """Uncompressed/compressed size of one deflated member (zip bombs have ratios in the thousands)."""
    max_manifest_size: int = 16 << 20
    """Size of ``capsule.json`` (bytes)."""
    max_array_elements: int = 1 << 34
    """Elements in one array built while loading."""
    max_pickle_size: int = 4 << 30
    """Size of one pickle stream (bytes)."""
    max_load_expansion: int = 16
    """Bytes a pickle stream may make loading allocate (arrays, copies, containers) per byte of the stream
    and its buffers, on top of 64 MiB. Arrays written by numpy need about 1; a few bytes of a hostile
    stream asking for gigabytes need far more."""


DEFAULT_LIMITS = Limits()


def sha256_of(data: bytes | memoryview | mmap.mmap) -> str:
    """Hex SHA-256 of a buffer. ``hashlib`` releases the GIL on large buffers, so this runs beside parsing."""
    h = hashlib.sha256()
    view = memoryview(data)
    for start in range(0, len(view), _CHUNK):
        h.update(view[start : start + _CHUNK])
    return h.hexdigest()


def check_member_name(name: str) -> str:
    """Refuse member names that could escape the capsule or collide: absolute, ``..``, backslashes, drives."""
    if not name or "\\" in name or "\x00" in name or name.startswith("/") or ":" in name.split("/", maxsplit=1)[0]:
        raise CapsuleFormatError(f"member name {name!r} is absolute or malformed; refusing to read this file.")
    if any(part in ("..", ".", "") for part in name.split("/")):
        raise CapsuleFormatError(f"member name {name!r} contains '..' or empty parts; refusing to read this file.")
    return name


# --------------------------------------------------------------------------------------------- writing


class CapsuleWriter:
    """Collects members and writes them atomically as a ZIP file or a directory.

    Use as a context manager; the destination appears only when the block exits without an error.
    """

    def __init__(self, path: str | os.PathLike[str], *, layout: str = "zip", overwrite: bool = False,
                 compress: bool = False) -> None:
        if layout not in ("zip", "dir"):
            raise ValueError(f"layout must be 'zip' or 'dir', not {layout!r}")
        self.path = Path(path)
        self.layout = layout
        self.compress = compress
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} already exists; pass overwrite=True to replace it.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, FileEntry] = {}
        self._tmp: Path | None = None
        self._zip: zipfile.ZipFile | None = None

    def __enter__(self) -> CapsuleWriter:
        prefix = f".{self.path.name}.tmp-"
        if self.layout == "zip":
            fd, tmp = tempfile.mkstemp(prefix=prefix, dir=self.path.parent)
            os.close(fd)
            self._tmp = Path(tmp)
            self._zip = zipfile.ZipFile(self._tmp, "w", allowZip64=True)
        else:
            self._tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=self.path.parent))
        return self

    def add(self, name: str, data: bytes | memoryview) -> FileEntry:
        """Add one member; its hash and size go into the manifest."""
        check_member_name(name)
        if name in self.files or name in (MANIFEST_NAME, SIGNATURE_NAME):
            raise ValueError(f"member {name!r} is written twice")
        view = memoryview(data).cast("B")
        entry = FileEntry(sha256_of(view), view.nbytes)
        self._write(name, view)
        self.files[name] = entry
        return entry

    def finish(self, manifest: Manifest, signature: bytes | None = None) -> None:
        """Write the manifest (and a detached signature) last."""
        manifest.files = dict(self.files)
        self._write(MANIFEST_NAME, memoryview(manifest.to_json()))
        if signature is not None:
            self._write(SIGNATURE_NAME, memoryview(signature))

    def _write(self, name: str, view: memoryview) -> None:
        assert self._tmp is not None
        if self._zip is None:
            target = self._tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as fh:
                fh.write(view)
            return
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        if self.compress and not name.startswith("model/buffers/"):
            info.compress_type = zipfile.ZIP_DEFLATED
        else:
            info.compress_type = zipfile.ZIP_STORED
            zip64 = view.nbytes > 0x7FFFFFFF
            fp = self._zip.fp
            assert fp is not None
            header_end = fp.tell() + _LOCAL_HEADER.size + len(name.encode()) + (20 if zip64 else 0) + 4
            info.extra = struct.pack("<HH", _ALIGN_EXTRA_ID, (-header_end) % ALIGNMENT) + b"\0" * (
                (-header_end) % ALIGNMENT
            )
        with self._zip.open(info, "w", force_zip64=view.nbytes > 0x7FFFFFFF) as out:
            for start in range(0, view.nbytes, _CHUNK):
                out.write(view[start : start + _CHUNK])

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._tmp is not None
        if exc_type is not None:
            self._discard()
            return
        try:
            if self._zip is not None:
                self._zip.close()
                _fsync_file(self._tmp)
                os.replace(self._tmp, self.path)
            else:
                for f in self._tmp.rglob("*"):
                    if f.is_file():
                        _fsync_file(f)
                _replace_dir(self._tmp, self.path)
            _fsync_dir(self.path.parent)
        except BaseException:
            self._discard()
            raise

    def _discard(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._tmp is not None and self._tmp.exists():
            if self._tmp.is_dir():
                shutil.rmtree(self._tmp, ignore_errors=True)
            else:
                self._tmp.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_dir(src: Path, dst: Path) -> None:
    """Swap a finished directory into place. The old capsule is moved aside first and removed after, so
    the destination always holds either the old capsule or the new one, never a mix."""
    if not os.path.lexists(dst):
        os.replace(src, dst)
        return
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    os.replace(dst, old)
    os.replace(src, dst)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- reading


class CapsuleReader:
    """Strict read access to the members of a capsule (ZIP or directory).

    ``view(name)`` returns a memory-mapped, copy-on-write view of a stored member (no copy);
    ``read(name)`` returns bytes. Member hashes are checked by :meth:`check_hashes`, which the loader
    runs on a second thread while the payload is parsed and joins before handing the model back.
    """

    def __init__(self, path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> None:
        self.path = Path(path)
        self.limits = limits
        self._maps: list[mmap.mmap] = []
        self._zip: zipfile.ZipFile | None = None
        self._fh: IO[bytes] | None = None
        self._zmap: mmap.mmap | None = None
        self._entries: dict[str, tuple[int, int, int, int]] = {}  # name -> (offset, size, csize, method)
        self._dir_sizes: dict[str, int] = {}
        self.manifest_bytes = b""
        try:
            if self.path.is_dir():
                self._scan_dir()
            else:
                self._scan_zip()
            self.manifest = self._read_manifest()
            self._check_members()
        except BaseException:
            self.close()
            raise

    # -- the two layouts

    def _scan_dir(self) -> None:
        root = self.path
        total = 0
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            for d in dirnames:
                if os.path.islink(os.path.join(dirpath, d)):
                    rel = os.path.relpath(os.path.join(dirpath, d), root)
                    raise CapsuleFormatError(f"member {rel!r} is a symlink; capsules may not contain links.")
            for f in filenames:
                full = os.path.join(dirpath, f)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    raise CapsuleFormatError(f"member {rel!r} is a symlink; capsules may not contain links.")
                if not stat.S_ISREG(st.st_mode):
                    raise CapsuleFormatError(f"member {rel!r} is not a regular file.")
                check_member_name(rel)
                self._check_size(rel, st.st_size)
                total += st.st_size
                self._dir_sizes[rel] = st.st_size
        if len(self._dir_sizes) > self.limits.max_members:
            raise LimitExceededError("the number of members", len(self._dir_sizes), self.limits.max_members,
                                     "max_members")
        if total > self.limits.max_total_size:
            raise LimitExceededError("the capsule's total size", total, self.limits.max_total_size,
                                     "max_total_size")

    def _scan_zip(self) -> None:
        try:
            self._fh = open(self.path, "rb")  # noqa: SIM115 - closed in close()
            self._zip = zipfile.ZipFile(self._fh)
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, struct.error,
                NotImplementedError) as exc:  # zipfile raises NotImplementedError for unknown ZIP versions
            raise CapsuleFormatError(
                f"{self.path} is not a readable capsule (ZIP): {exc}. It may be truncated or corrupt."
            ) from None
        if len(infos) > self.limits.max_members:
            raise LimitExceededError("the number of members", len(infos), self.limits.max_members, "max_members")
        self._fh.seek(0)
        if (magic := self._fh.read(4)) not in (b"PK\x03\x04", b"PK\x05\x06"):
            # zipfile tolerates bytes before the archive; a capsule never has any, and such a prefix is
            # how a file is made to be both a capsule and a pickle (a polyglot).
            raise CapsuleFormatError(
                f"{self.path} starts with {magic!r} instead of a ZIP header: data was put in front of the "
                "archive. Refusing a file that could be read as two different things."
            )
        file_size = os.fstat(self._fh.fileno()).st_size
        if file_size:
            self._zmap = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_COPY)
            self._maps.append(self._zmap)
        total = 0
        spans: list[tuple[int, int, str]] = []  # (local header offset, end of data, name)
        for info in infos:
            name = info.filename
            check_member_name(name)
            if name in self._entries:
                raise CapsuleFormatError(f"member {name!r} appears twice in {self.path}; refusing an ambiguous file.")
            if info.flag_bits & 0x1:
                raise CapsuleFormatError(f"member {name!r} is encrypted; capsules are never encrypted.")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise CapsuleFormatError(
                    f"member {name!r} uses compression method {info.compress_type}; only stored and deflated are read."
                )
            self._check_size(name, info.file_size)
            if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > 1024:
                ratio = info.file_size // max(info.compress_size, 1)
                if ratio > self.limits.max_compression_ratio:
                    raise LimitExceededError(f"the compression ratio of member {name!r}", ratio,
                                             self.limits.max_compression_ratio, "max_compression_ratio")
            total += info.file_size
            if total > self.limits.max_total_size:
                raise LimitExceededError("the capsule's total size", total, self.limits.max_total_size,
                                         "max_total_size")
            offset = self._data_offset(info, file_size)
            if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
                raise CapsuleFormatError(f"member {name!r} is stored but its sizes disagree; the file is corrupt.")
            if offset + info.compress_size > file_size:
                raise CapsuleFormatError(f"member {name!r} runs past the end of the file; it is truncated.")
            self._entries[name] = (offset, info.file_size, info.compress_size, info.compress_type)
            spans.append((info.header_offset, offset + info.compress_size, name))
        _refuse_overlaps(spans)

    def _data_offset(self, info: zipfile.ZipInfo, file_size: int) -> int:
        assert self._zmap is not None
        start = info.header_offset
        if start < 0 or start + _LOCAL_HEADER.size > file_size:
            raise CapsuleFormatError(f"member {info.filename!r} has a header outside the file; it is corrupt.")
        fields = _LOCAL_HEADER.unpack_from(self._zmap, start)
        if fields[0] != b"PK\x03\x04":
            raise CapsuleFormatError(f"member {info.filename!r} has a bad local header; the file is corrupt.")
        name_len, extra_len = fields[9], fields[10]
        name = self._zmap[start + _LOCAL_HEADER.size : start + _LOCAL_HEADER.size + name_len]
        if name.decode("utf-8", "replace") != info.filename and name.decode("cp437", "replace") != info.filename:
            raise CapsuleFormatError(
                f"member {info.filename!r} is named differently in its local header ({name!r}); refusing "
                "a file whose two directories disagree."
            )
        return int(info.header_offset + _LOCAL_HEADER.size + name_len + extra_len)

    def _check_size(self, name: str, size: int) -> None:
        limit = self.limits.max_manifest_size if name == MANIFEST_NAME else self.limits.max_member_size
        if size > limit:
            knob = "max_manifest_size" if name == MANIFEST_NAME else "max_member_size"
            raise LimitExceededError(f"the size of member {name!r}", size, limit, knob)

    def _read_manifest(self) -> Manifest:
        if MANIFEST_NAME not in self.names():
            raise CapsuleFormatError(
                f"{self.path} has no {MANIFEST_NAME}; it is not a capsule. Use modelcapsule.audit() to "
                "examine plain model files."
            )
        self.manifest_bytes = self.read(MANIFEST_NAME)
        return parse_manifest(self.manifest_bytes)

    def _check_members(self) -> None:
        present = set(self.names()) - {MANIFEST_NAME, SIGNATURE_NAME}
        listed = set(self.manifest.files)
        if extra := sorted(present - listed):
            raise CapsuleFormatError(
                f"member(s) {', '.join(map(repr, extra))} are not listed in the manifest; refusing a capsule "
                "with unaccounted content."
            )
        if missing := sorted(listed - present):
            raise CapsuleFormatError(
                f"member(s) {', '.join(map(repr, missing))} are listed in the manifest but missing; the "
                "capsule is incomplete."
            )
        for name in listed:
            if self.size(name) != self.manifest.files[name].size:
                raise IntegrityError(
                    f"member {name!r} is {self.size(name)} bytes but the manifest says "
                    f"{self.manifest.files[name].size}; the capsule was altered or truncated."
                )

    # -- access

    @property
    def is_dir(self) -> bool:
        return self._zip is None

    def names(self) -> list[str]:
        return list(self._dir_sizes) if self.is_dir else list(self._entries)

    def file_stats(self) -> list[tuple[str, os.stat_result]]:
        """The identity of the files this capsule is read from: the open ZIP file itself (not whatever
        its path names now), or every file of a directory capsule. Raises OSError if one vanished."""
        if self._fh is not None:
            return [("", os.fstat(self._fh.fileno()))]  # the inode is the identity, whatever path reached it
        return [(name, os.stat(self.path / name)) for name in sorted(self._dir_sizes)]

    def __contains__(self, name: str) -> bool:
        return name in (self._dir_sizes if self.is_dir else self._entries)

    def size(self, name: str) -> int:
        self._need(name)
        return self._dir_sizes[name] if self.is_dir else self._entries[name][1]

    def _need(self, name: str) -> None:
        if name not in self:
            raise CapsuleFormatError(f"{self.path} has no member {name!r}; the capsule is incomplete.")

    def view(self, name: str) -> memoryview:
        """A zero-copy, copy-on-write view of a member (decompressed into memory if it was deflated)."""
        self._need(name)
        if self.is_dir:
            size = self._dir_sizes[name]
            if size == 0:
                return memoryview(bytearray())
            with open(self.path / name, "rb") as fh:
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
            self._maps.append(mm)
            return memoryview(mm)
        offset, size, _csize, method = self._entries[name]
        if method == zipfile.ZIP_STORED:
            if size == 0 or self._zmap is None:
                return memoryview(bytearray())
            return memoryview(self._zmap)[offset : offset + size]
        return memoryview(bytearray(self.read(name)))

    def read(self, name: str) -> bytes:
        self._need(name)
        if self.is_dir:
            with open(self.path / name, "rb") as fh:
                data = fh.read(self._dir_sizes[name] + 1)
            if len(data) != self._dir_sizes[name]:
                raise CapsuleFormatError(f"member {name!r} changed size while being read.")
            return data
        _offset, size, _csize, method = self._entries[name]
        if method == zipfile.ZIP_STORED:
            return bytes(self.view(name))
        assert self._zip is not None
        try:
            with self._zip.open(name) as fh:
                data = fh.read(size + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error, NotImplementedError) as exc:
            raise CapsuleFormatError(f"member {name!r} cannot be decompressed: {exc}; the file is corrupt.") from None
        if len(data) != size:
            raise CapsuleFormatError(f"member {name!r} decompresses to {len(data)} bytes, not {size}.")
        return data

    def iter_views(self) -> Iterator[tuple[str, memoryview]]:
        for name in sorted(self.manifest.files):
            yield name, self.view(name)

    # -- integrity

    def check_hashes(self, names: list[str] | None = None) -> None:
        """Raise :class:`IntegrityError` naming the first member whose SHA-256 differs from the manifest."""
        for name in names if names is not None else sorted(self.manifest.files):
            expected = self.manifest.files[name].sha256
            actual = sha256_of(self.view(name))
            if actual != expected:
                raise IntegrityError(
                    f"member {name!r} of {self.path} does not match its recorded SHA-256 "
                    f"(expected {expected[:12]}…, found {actual[:12]}…): the capsule was modified after it was "
                    "saved. Do not load it; get a fresh copy from its source."
                )

    def check_hashes_async(self, pool: ThreadPoolExecutor) -> Future[None]:
        """Start :meth:`check_hashes` on ``pool``, largest members first, so it overlaps with parsing."""
        names = sorted(self.manifest.files, key=lambda n: -self.manifest.files[n].size)
        return pool.submit(self.check_hashes, names)

    def close(self) -> None:
        """Release file handles. Mapped memory stays valid while arrays still use it."""
        if self._zip is not None:
            self._zip.close()
        if self._fh is not None:
            self._fh.close()
        self._maps.clear()
        self._zmap = None

    def __enter__(self) -> CapsuleReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _refuse_overlaps(spans: list[tuple[int, int, str]]) -> None:
    """Refuse members whose bytes overlap: one member containing another is how zip bombs multiply their
    output without a high per-member ratio, and how one byte range is read as two different members."""
    ordered = sorted(spans)
    for (_start, end, name), (next_start, _end, next_name) in itertools.pairwise(ordered):
        if next_start < end:
            raise CapsuleFormatError(
                f"members {name!r} and {next_name!r} overlap in the file; refusing a ZIP whose members share "
                "bytes (a zip-bomb technique)."
            )


def open_capsule(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> CapsuleReader:
    """Open a capsule (ZIP file or directory) for strict reading; raises on any structural problem."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no capsule at {p}")
    return CapsuleReader(p, limits)
