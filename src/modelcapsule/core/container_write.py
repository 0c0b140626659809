"""Writing the capsule container: a ZIP file or the same members in a directory, atomically.

Members go to a temporary sibling, which is fsynced and renamed over the destination, so a crash
mid-save never leaves a half-written capsule where a good one was. Stored members start at a multiple of
:data:`ALIGNMENT` in the ZIP file, so arrays read from them are aligned.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import shutil
import struct
import tempfile
import zipfile
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

from ..errors import CapsuleFormatError
from .atomic import PLAIN_DIR_MODE, PLAIN_MODE, AtomicFile, fsync_dir
from .manifest import MANIFEST_NAME, SIGNATURE_NAME, FileEntry, Manifest

__all__ = ["ALIGNMENT", "CapsuleWriter", "check_member_name", "sha256_of"]

ALIGNMENT = 64
"""Stored members start at a multiple of this offset in the ZIP file, so arrays mapped from it are aligned."""

_ALIGN_EXTRA_ID = 0xA11C  # a private ZIP extra-field id that only carries padding
LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
CHUNK = 1 << 24


def sha256_of(data: bytes | memoryview | mmap.mmap) -> str:
    """Hex SHA-256 of a buffer. ``hashlib`` releases the GIL on large buffers, so this runs beside parsing."""
    h = hashlib.sha256()
    view = memoryview(data)
    for start in range(0, len(view), CHUNK):
        h.update(view[start : start + CHUNK])
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
        self._tmp: Path | None = None  # the directory layout's temporary sibling
        self._zip: zipfile.ZipFile | None = None
        self._zip_file = ExitStack()  # the ZIP layout: the ZipFile inside its AtomicFile

    def __enter__(self) -> CapsuleWriter:
        if self.layout == "zip":
            with ExitStack() as stack:  # a failure while opening removes the temporary file
                # a capsule gets a plain file's mode (what the user's umask allows), like any saved model:
                # a server running as another user reads it
                fh = stack.enter_context(AtomicFile(self.path, mode=PLAIN_MODE))
                self._zip = stack.enter_context(zipfile.ZipFile(fh, "w", allowZip64=True))
                self._zip_file = stack.pop_all()
        else:
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.tmp-", dir=self.path.parent))
            os.chmod(self._tmp, PLAIN_DIR_MODE)  # mkdtemp's 0700 would hide the capsule from other users
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
        if self._zip is None:
            assert self._tmp is not None
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
            header_end = fp.tell() + LOCAL_HEADER.size + len(name.encode()) + (20 if zip64 else 0) + 4
            info.extra = struct.pack("<HH", _ALIGN_EXTRA_ID, (-header_end) % ALIGNMENT) + b"\0" * (
                (-header_end) % ALIGNMENT
            )
        with self._zip.open(info, "w", force_zip64=view.nbytes > 0x7FFFFFFF) as out:
            for start in range(0, view.nbytes, CHUNK):
                out.write(view[start : start + CHUNK])

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._zip is not None:  # closing the ZipFile writes its central directory, then the rename
            self._zip_file.__exit__(exc_type, exc, tb)
            return
        assert self._tmp is not None
        if exc_type is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return
        try:
            for f in self._tmp.rglob("*"):
                if f.is_file():
                    _fsync_file(f)
            _replace_dir(self._tmp, self.path)
            fsync_dir(self.path.parent)
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


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


