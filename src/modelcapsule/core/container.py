"""Reading the capsule container (a ZIP file or the same members in a directory), and the names
every part of the package imports from here: :class:`Limits`, :class:`CapsuleWriter`, :func:`open_capsule`.

Reading goes through one strict parser: no absolute or ``..`` member names, no duplicates, no
symlinks, no member missing from the manifest (or listed but absent), size and compression-ratio caps.
Each member is read once into private memory, and those very bytes are hashed and parsed (see
:mod:`modelcapsule.core.exact_bytes`); a loader that asks for a lease reads a ZIP capsule in place while
no one can write it (:mod:`modelcapsule.core.file_lease`); ``Limits(map_files=True)`` maps stored members
from the file instead, when only their owner can write them. Writing lives in :mod:`modelcapsule.core.container_write`.
"""

from __future__ import annotations

import itertools
import mmap
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from ..errors import CapsuleFormatError, IntegrityError, LimitExceededError
from .container_write import ALIGNMENT, CHUNK, LOCAL_HEADER, CapsuleWriter, check_member_name, sha256_of
from .exact_bytes import PendingBytes, PrivateBytes, map_files_requested, only_owner_can_write, read_private
from .file_lease import LeasedMapping, take_lease
from .limits import DEFAULT_LIMITS, Limits
from .manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest, parse_manifest

__all__ = ["ALIGNMENT", "CHUNK", "DEFAULT_LIMITS", "CapsuleReader", "CapsuleWriter", "Limits", "check_member_name",
           "open_capsule", "sha256_of"]

_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


# --------------------------------------------------------------------------------------------- reading


class CapsuleReader:
    """Strict read access to the members of a capsule (ZIP or directory).

    ``view(name)`` returns the member's bytes, read once into private memory (or, under a read lease,
    mapped copy-on-write from a file no one can write until :meth:`release_file`; or, with the opt-in
    ``Limits.map_files``, mapped copy-on-write from a file only its owner can write); ``read(name)``
    returns them as ``bytes``. Every check and every parse sees the same buffer. Member hashes are checked
    by :meth:`check_hashes`, which the loader runs on a second thread while the payload is parsed and
    joins before handing the model back.
    """

    def __init__(self, path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS, *, lease: bool = False) -> None:
        self.path = Path(path)
        self.limits = limits
        self.mapped = False
        """True when members are mapped from the file (the opt-in fast path) rather than copied."""
        self._want_map = map_files_requested(limits.map_files)
        self._want_lease = lease
        self._lease: LeasedMapping | None = None
        self._maps: list[mmap.mmap] = []
        self._zip: zipfile.ZipFile | None = None
        self._fh: IO[bytes] | None = None
        self._zmap: mmap.mmap | None = None
        self._root_fd: int | None = None
        self._entries: dict[str, tuple[int, int, int, int]] = {}  # name -> (offset, size, csize, method)
        self._dir_sizes: dict[str, int] = {}
        self._dir_ids: dict[str, tuple[int, int]] = {}  # name -> (device, inode) seen by the scan
        self._bytes = PrivateBytes()
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
        self._root_fd = os.open(root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        total = 0
        mappable = self._want_map
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
                self._dir_ids[rel] = (st.st_dev, st.st_ino)
                mappable = mappable and only_owner_can_write(st)
        if len(self._dir_sizes) > self.limits.max_members:
            raise LimitExceededError("the number of members", len(self._dir_sizes), self.limits.max_members,
                                     "max_members")
        if total > self.limits.max_total_size:
            raise LimitExceededError("the capsule's total size", total, self.limits.max_total_size,
                                     "max_total_size")
        self.mapped = mappable

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
        fd = self._fh.fileno()
        if (magic := os.pread(fd, 4, 0)) not in (b"PK\x03\x04", b"PK\x05\x06"):
            # zipfile tolerates bytes before the archive; a capsule never has any, and such a prefix is
            # how a file is made to be both a capsule and a pickle (a polyglot).
            raise CapsuleFormatError(
                f"{self.path} starts with {magic!r} instead of a ZIP header: data was put in front of the "
                "archive. Refusing a file that could be read as two different things."
            )
        st = os.fstat(fd)
        file_size = st.st_size
        if file_size and self._want_map and only_owner_can_write(st):
            self._zmap = mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)
            self._maps.append(self._zmap)
            self.mapped = True
        elif self._want_lease:
            self._lease = take_lease(fd, file_size)
            if self._lease is not None:  # the file cannot change until release_file(): read it where it lies
                self._zmap = self._lease.mapping
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
        assert self._fh is not None
        start = info.header_offset
        if start < 0 or start + LOCAL_HEADER.size > file_size:
            raise CapsuleFormatError(f"member {info.filename!r} has a header outside the file; it is corrupt.")
        header = os.pread(self._fh.fileno(), LOCAL_HEADER.size + 0xFFFF, start)
        if len(header) < LOCAL_HEADER.size:
            raise CapsuleFormatError(f"member {info.filename!r} has a truncated local header.")
        fields = LOCAL_HEADER.unpack_from(header, 0)
        if fields[0] != b"PK\x03\x04":
            raise CapsuleFormatError(f"member {info.filename!r} has a bad local header; the file is corrupt.")
        name_len, extra_len = fields[9], fields[10]
        name = header[LOCAL_HEADER.size : LOCAL_HEADER.size + name_len]
        if name.decode("utf-8", "replace") != info.filename and name.decode("cp437", "replace") != info.filename:
            raise CapsuleFormatError(
                f"member {info.filename!r} is named differently in its local header ({name!r}); refusing "
                "a file whose two directories disagree."
            )
        return int(info.header_offset + LOCAL_HEADER.size + name_len + extra_len)

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
        assert self._root_fd is not None
        return [(name, os.stat(name, dir_fd=self._root_fd, follow_symlinks=False))
                for name in sorted(self._dir_sizes)]

    def __contains__(self, name: str) -> bool:
        return name in (self._dir_sizes if self.is_dir else self._entries)

    def size(self, name: str) -> int:
        self._need(name)
        return self._dir_sizes[name] if self.is_dir else self._entries[name][1]

    def _need(self, name: str) -> None:
        if name not in self:
            raise CapsuleFormatError(f"{self.path} has no member {name!r}; the capsule is incomplete.")

    def view(self, name: str) -> memoryview:
        """The member's bytes: the same buffer on every call (read once; see the class docstring)."""
        self._need(name)
        if self.is_dir:
            return self._bytes.get(name, lambda: self._read_dir_member(name))
        offset, size, _csize, method = self._entries[name]
        if method == zipfile.ZIP_STORED:
            if size == 0:
                return memoryview(bytearray())
            if self._zmap is not None:
                return memoryview(self._zmap)[offset : offset + size]
            assert self._fh is not None
            fd = self._fh.fileno()
            return self._bytes.get(name, lambda: self._read_stored(name, fd, offset, size))
        return self._bytes.get(name, lambda: memoryview(bytearray(self._inflate(name, size))))

    def _read_stored(self, name: str, fd: int, offset: int, size: int) -> memoryview:
        pending = PendingBytes(size, f"member {name!r}")
        self._bytes.pending[name] = pending  # from now on view_as_read() hands out what has arrived
        return pending.fill(fd, offset)

    def view_as_read(self, name: str) -> tuple[memoryview, Callable[[int], None]]:
        """The member's buffer and a ``wait(end)`` that returns once its first ``end`` bytes are in.

        While another thread (the hash thread) is reading the member, this returns at once, so a parser
        can use the front of the member while the rest arrives; otherwise it is :meth:`view` and a
        ``wait`` that never waits."""
        pending = self._bytes.pending.get(name)
        if pending is not None:
            return pending.view, pending.wait
        return self.view(name), _arrived

    def read(self, name: str) -> bytes:
        return bytes(self.view(name))

    def _open_member(self, name: str) -> int:
        """An fd on member ``name`` opened component by component from the capsule's root, following no
        link, and refused unless it is the very file the scan saw (a racer's rename is caught here)."""
        assert self._root_fd is not None
        parts = name.split("/")
        opened: list[int] = []
        try:
            current = self._root_fd
            for part in parts[:-1]:
                current = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=current)
                opened.append(current)
            fd = os.open(parts[-1], os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK, dir_fd=current)
        except OSError as exc:
            raise CapsuleFormatError(f"member {name!r} cannot be opened as a plain file inside the capsule "
                                     f"({exc.strerror}); it was moved or replaced by a link.") from exc
        finally:
            for d in opened:
                os.close(d)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != self._dir_ids[name] or st.st_size != self._dir_sizes[name] or \
                not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise CapsuleFormatError(f"member {name!r} was replaced while the capsule was being read; refusing it.")
        return fd

    def _read_dir_member(self, name: str) -> memoryview:
        size = self._dir_sizes[name]
        fd = self._open_member(name)
        try:
            if self.mapped and size:
                mm = mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)
                self._maps.append(mm)
                return memoryview(mm)
            view = read_private(fd, 0, size, f"member {name!r}")
            if os.pread(fd, 1, size):
                raise CapsuleFormatError(f"member {name!r} grew while being read; refusing it.")
            return view
        finally:
            os.close(fd)

    def _inflate(self, name: str, size: int) -> bytes:
        assert self._zip is not None
        try:
            with self._zip.open(name) as fh:
                data = fh.read(size + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error, NotImplementedError) as exc:
            raise CapsuleFormatError(f"member {name!r} cannot be decompressed: {exc}; the file is corrupt.") from None
        if len(data) != size:
            raise CapsuleFormatError(f"member {name!r} decompresses to {len(data)} bytes, not {size}.")
        return data

    # -- integrity

    def check_hashes(self, names: list[str] | None = None) -> None:
        """Raise :class:`IntegrityError` naming the first member whose SHA-256 differs from the manifest.

        The bytes hashed are the very buffer :meth:`view` hands the parser."""
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
        lease = self._lease

        def check() -> None:
            if lease is not None:
                lease.prefault()  # the pages the parse is about to read, mapped while it runs its dry run
            self.check_hashes(names)

        return pool.submit(check)

    @property
    def leased(self) -> bool:
        """True while members are read in place under a read lease (see :mod:`modelcapsule.core.file_lease`)."""
        return self._lease is not None

    def release_file(self) -> bool:
        """End the read lease, if any: detach whatever was built on the file's pages from the file, let
        writers proceed, and return False if one knocked meanwhile (what was built must then be dropped
        and built again from private copies). True without a lease. Call it once the parse is done."""
        lease, self._lease = self._lease, None
        if lease is None:
            return True
        self._zmap = None
        return lease.release()

    def close(self) -> None:
        """Release file handles. Memory stays valid while arrays still use it."""
        self.release_file()
        if self._zip is not None:
            self._zip.close()
        if self._fh is not None:
            self._fh.close()
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None
        self._maps.clear()
        self._bytes.clear()
        self._zmap = None

    def __enter__(self) -> CapsuleReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _arrived(_end: int) -> None:
    """The ``wait`` of a member read in full."""


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


def open_capsule(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS, *,
                 lease: bool = False) -> CapsuleReader:
    """Open a capsule (ZIP file or directory) for strict reading; raises on any structural problem.

    ``lease=True`` (the loader's choice) reads a ZIP capsule in place under a read lease where the system
    grants one, instead of copying its members; the caller must call :meth:`CapsuleReader.release_file`
    once it has built what it needs, and check what it returns."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no capsule at {p}")
    return CapsuleReader(p, limits, lease=lease)
