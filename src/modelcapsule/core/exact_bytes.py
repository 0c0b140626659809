"""Verify exactly the bytes you use: every member is read once, into memory no one else can write, and
that one copy is what is hashed, signature-checked, audited and parsed.

Why not parse the file where it lies? A memory mapping, even a private (copy-on-write) one, shows every
later write to the file in the pages this process has not written itself, and a path re-opened after a
check may name another file by then. Either way the bytes a check passed are not the bytes the model is
built from: a racer who can write the file (or, for a directory capsule, rename members) swaps them in
between. And a file truncated while mapped kills the process with ``SIGBUS`` on the next touch.

So by default a member's bytes are read with ``pread`` into anonymous memory (one copy, at disk
speed) and kept for the life of the reader; arrays built from them alias that private memory, so a
later write to the file or its truncation changes nothing in a loaded model.

**Under a read lease** (Linux, ZIP capsules, :mod:`modelcapsule.core.file_lease`) the loader reads the
members where they lie instead: while the lease is held nobody can write or truncate the file, and the
model is detached from the file before the lease ends. Elsewhere the copies above are used.

**The opt-in fast path.** ``Limits(map_files=True)`` (or ``MODELCAPSULE_MAP_FILES=1``) maps stored
members from the file instead (zero copy, pages shared between processes that load the same capsule)
and lets the loader reuse its record of passed hash checks
(:mod:`modelcapsule.core.checks_on_record`). That is sound only while **no one writes the file in place**:
a write through a shared mapping changes the content without changing what ``stat`` shows. It is
therefore honoured only for files that no one but their owner can write, and whose owner is the
loading user or root (mode without group/other write bits); for any other file the default is used.
"""

from __future__ import annotations

import mmap
import os
import stat
import threading
from collections.abc import Callable

from ..errors import CapsuleFormatError

__all__ = ["MAP_FILES_ENV", "PendingBytes", "PrivateBytes", "map_files_requested", "only_owner_can_write",
           "read_private"]

MAP_FILES_ENV = "MODELCAPSULE_MAP_FILES"
"""Environment variable that turns the mapped fast path on when ``Limits.map_files`` is left at None."""

_ANONYMOUS_FROM = 1 << 20
"""Members at least this large go to anonymous memory (page-aligned, returned to the system when freed)."""

def anonymous_buffer(size: int) -> mmap.mmap:
    """``size`` bytes of zeroed memory private to this process, for a member's copy.

    Private (``MAP_PRIVATE``), not ``mmap(-1, size)``'s default shared anonymous memory: shared anonymous
    pages are shmem, slower to fault in and free, and a forked child writing them would change the
    parent's copy. Reading a 117 MiB member (page cache warm) and freeing it took ~95 ms and ~35 ms in
    shared anonymous memory, ~70 ms and ~15 ms in private 4 KiB pages. Transparent huge pages (advised
    with ``MADV_HUGEPAGE``) took ~12-25 ms and ~1 ms when the kernel had 2 MiB pages ready, but under the
    common ``defrag=madvise`` setting a fault on an advised region compacts memory synchronously: in fresh
    processes on a machine whose memory had been churned, the forest's every-check load measured 150 ms
    at best and 400-510 ms in 4 loads of 7 (median 403 ms), against a steady 208-230 ms in 4 KiB pages. So
    no advice: the read runs on the hash thread, beside the parse, where its cost is mostly hidden."""
    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    return mmap.mmap(-1, size, flags=flags) if flags else mmap.mmap(-1, size)


def map_files_requested(setting: bool | None) -> bool:
    """``Limits.map_files``, or when it is None, the :data:`MAP_FILES_ENV` environment variable."""
    if setting is not None:
        return bool(setting)
    return os.environ.get(MAP_FILES_ENV, "").strip().lower() in {"1", "on", "yes", "true"}


def only_owner_can_write(st: os.stat_result) -> bool:
    """Whether only the loading user or root could change this file: owned by one of them and not
    writable by group or others (the condition for mapping it instead of copying it)."""
    if not stat.S_ISREG(st.st_mode) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return False
    euid = os.geteuid() if hasattr(os, "geteuid") else 0
    return st.st_uid in (0, euid)


_CHUNK = 8 << 20
"""How much a read advances between announcements of progress (see :class:`PendingBytes`)."""


class PendingBytes:
    """A member being read into private memory, whose bytes may be used as soon as they have arrived.

    The hash thread reads a large member while the parser builds the model: :meth:`wait` lets the parser
    take each out-of-band array the moment its span is in, instead of waiting for the whole member. The
    bytes handed out are final (the buffer is written once, front to back, and never again), and they are
    the very bytes the hash thread hashes once the read is complete."""

    def __init__(self, size: int, what: str) -> None:
        buffer: mmap.mmap | bytearray = anonymous_buffer(size) if size >= _ANONYMOUS_FROM else bytearray(size)
        self.view, self.size, self.what = memoryview(buffer), size, what
        self._done = 0
        self._failed = False
        self._arrived = threading.Condition()

    def fill(self, fd: int, offset: int) -> memoryview:
        """Read the whole member from ``fd`` at ``offset``; raise if the file ends early."""
        try:
            while self._done < self.size:
                end = min(self.size, self._done + _CHUNK)
                n = os.preadv(fd, [self.view[self._done:end]], offset + self._done)
                if n <= 0:
                    raise CapsuleFormatError(f"{self.what} ends {self.size - self._done} bytes early: the file was "
                                             "truncated while it was being read.")
                with self._arrived:
                    self._done += n
                    self._arrived.notify_all()
        except BaseException:
            with self._arrived:
                self._failed = True
                self._arrived.notify_all()
            raise
        return self.view

    def wait(self, end: int) -> None:
        """Return once the first ``end`` bytes have been read; raise if the read failed before them."""
        with self._arrived:
            while self._done < end and not self._failed:
                self._arrived.wait()
            if self._done < end:
                raise CapsuleFormatError(f"{self.what} could not be read to byte {end:,}; the file is truncated "
                                         "or unreadable.")


def read_private(fd: int, offset: int, size: int, what: str) -> memoryview:
    """``size`` bytes at ``offset`` of ``fd``, copied into memory private to this process (writable, so
    arrays built on it behave as they did on a copy-on-write mapping)."""
    if size == 0:
        return memoryview(bytearray())
    return PendingBytes(size, what).fill(fd, offset)


class PrivateBytes:
    """The bytes of each member, read at most once (thread-safe: the hash thread and the parser may ask
    for the same member at once, and both get the same buffer)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._views: dict[str, memoryview] = {}
        self.pending: dict[str, PendingBytes] = {}
        """Members whose read has started, by name (their bytes arrive front to back)."""

    def get(self, name: str, read: Callable[[], memoryview]) -> memoryview:
        """The cached bytes of ``name``, reading them with ``read()`` the first time."""
        view = self._views.get(name)
        if view is not None:
            return view
        with self._lock:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            view = self._views.get(name)
            if view is None:
                view = read()
                self._views[name] = view
            return view

    def clear(self) -> None:
        """Forget the buffers (arrays built on them keep theirs alive)."""
        self._views.clear()
        self._locks.clear()
        self.pending.clear()
