"""A file nobody can change while a load reads it: a kernel read lease, and the mapping it makes safe.

Verify exactly the bytes you use (:mod:`modelcapsule.core.exact_bytes`) normally costs a private copy of
every member: the copy is what is hashed and parsed, so a racer who writes the file meanwhile changes
nothing. Most of that copy's cost is not copying but memory: a 117 MiB member is ~30,000 fresh pages the
kernel must zero, map and later free (~60 ms of the 300-tree forest's load, on a core the hash check
needs).

On Linux a **read lease** (``fcntl(F_SETLEASE, F_RDLCK)``) gives the same guarantee without the copy.
The kernel grants it only while no one has the file open for writing (a writable shared mapping counts),
and while it is held every ``open`` for writing and every ``truncate`` of the file *blocks in the
kernel* until the holder lets go. So for as long as the lease is held, the file's bytes cannot change,
and the load can hash and parse them where they lie, in a copy-on-write mapping of the file.

Two things remain, and :class:`LeasedMapping` handles both before the lease is released:

* **Nothing may keep pointing into the file afterwards.** A truncation after the release would kill the
  process (``SIGBUS``) at the next touch, and a later write would change a kept array. A model that copies
  what it is built from (a scikit-learn tree copies its node arrays) leaves the mapping unused, and it is
  simply unmapped. If anything still refers to it (a nearest-neighbours model keeps its training array),
  the mapped range is replaced in place by anonymous memory holding the same bytes (``mremap`` of a fresh
  copy over the same addresses), so every array keeps its address and its bytes, and no longer depends on
  the file.
* **A revoked lease.** The kernel does not make a blocked writer wait forever: once a writer knocks, it
  revokes the lease after ``/proc/sys/fs/lease-break-time`` seconds (45 by default). A writer that knocked
  is harmless while it waits, and it cannot have stopped waiting before that time has passed since the
  lease was taken; :meth:`LeasedMapping.release` reports the file untouched when no writer knocked, or
  when the lease was released sooner than that. Otherwise the loader throws away what it built and loads
  again from private copies. Leases are used only where that timer is at least
  :data:`MIN_BREAK_SECONDS` and for files of at most :data:`MAX_LEASED_BYTES`, which load far faster; a
  load that still outlived the timer could see a truncation (and ``SIGBUS``). Root can shorten the timer
  while a load runs; like root's other powers over the file, that is outside what a lease defends.

The lease holder is normally sent ``SIGIO`` when a writer knocks, and ``SIGIO`` kills a process that
does not handle it. The lease's signal is therefore set to ``SIGURG`` (ignored unless handled) before the
lease is taken, and its recipient cleared right after, so nothing is delivered at all.

Where leases are unavailable (another OS, a file system without them, a file the loading user neither
owns nor has ``CAP_LEASE`` for, a file someone has open for writing), :func:`take_lease` returns None and
the loader copies, as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import platform
import signal
import sys
import time
from functools import cache
from pathlib import Path

__all__ = ["MAX_LEASED_BYTES", "MIN_BREAK_SECONDS", "LeasedMapping", "take_lease"]

MIN_BREAK_SECONDS = 10
"""Leases are used only if the kernel lets a lease holder keep writers waiting at least this long."""

MAX_LEASED_BYTES = 4 << 30
"""Larger files are copied: their load could approach the kernel's lease-break time."""

_MARGIN_SECONDS = 1.0
"""Slack taken off the lease-break time when judging whether a waiting writer could have got through."""

_F_SETSIG = 10  # <fcntl.h> on Linux; the fcntl module does not export it
_BREAK_TIME = Path("/proc/sys/fs/lease-break-time")


_MACHINES = {"x86_64", "aarch64"}
"""Where calling the variadic ``mremap`` through ctypes with fixed integer arguments follows the ABI."""


def _break_seconds() -> int:
    """The kernel's lease-break time, or 0 where leases are not used (another OS or machine, no
    ``F_SETLEASE``)."""
    if not sys.platform.startswith("linux") or platform.machine() not in _MACHINES:
        return 0
    try:
        import fcntl

        getattr(fcntl, "F_SETLEASE")  # noqa: B009 - absent outside Linux builds
        return int(_BREAK_TIME.read_text().strip())
    except (ImportError, AttributeError, OSError, ValueError):
        return 0


def take_lease(fd: int, size: int) -> LeasedMapping | None:
    """A read lease on ``fd``'s file and a copy-on-write mapping of it, or None where that is not possible."""
    break_seconds = _break_seconds()
    if size <= 0 or size > MAX_LEASED_BYTES or break_seconds < MIN_BREAK_SECONDS:
        return None
    import fcntl

    try:
        fcntl.fcntl(fd, _F_SETSIG, signal.SIGURG)  # a knock before F_SETOWN below is ignored, not fatal
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError:  # EAGAIN: open for writing somewhere; EACCES: not ours; EINVAL: no leases here
        return None
    taken = time.monotonic()
    try:
        fcntl.fcntl(fd, fcntl.F_SETOWN, 0)  # nobody is signalled when a writer knocks
        mapping = mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)
    except BaseException:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        raise
    return LeasedMapping(fd, mapping, taken + break_seconds - _MARGIN_SECONDS)


class LeasedMapping:
    """A copy-on-write mapping of a file under a read lease (see the module docstring)."""

    def __init__(self, fd: int, mapping: mmap.mmap, safe_until: float) -> None:
        self.fd, self.mapping = fd, mapping
        self._safe_until = safe_until  # time.monotonic() before which the kernel cannot have revoked it
        self._held = True

    def prefault(self) -> None:
        """Map every page of the file into the process at once (``MADV_POPULATE_READ``, Linux 5.14+).

        The pages are in the page cache already; touching them one by one costs a fault per 64 KiB. On the
        hash thread at the start of a load this takes ~10 ms for 117 MiB and spares the parse and the hash
        ~20 ms of faults. Older kernels refuse the advice (the return value is ignored), and the pages are
        faulted in on touch as before."""
        libc = _libc()  # through ctypes, which lets go of the GIL: mmap.madvise holds it for the whole call
        libc.madvise(_address(self.mapping), len(self.mapping), _POPULATE_READ)  # an error just means "faults"

    def intact(self) -> bool:
        """Whether the file cannot have changed since the lease was taken: no writer knocked (the kernel
        reports ``F_UNLCK`` once one has, whether it still waits or the lease was revoked), or one did but
        too recently for the kernel to have let it through."""
        import fcntl

        if not self._held:
            return False
        if time.monotonic() < self._safe_until:
            return True
        try:
            return bool(fcntl.fcntl(self.fd, fcntl.F_GETLEASE) == fcntl.F_RDLCK)
        except OSError:
            return False

    def release(self) -> bool:
        """Detach everything built on the mapping from the file, then let go of the lease.

        Returns whether the file stayed untouched throughout (see :meth:`intact`). Idempotent."""
        if not self._held:
            return False
        try:
            _unmap_or_privatize(self.mapping)
            return self.intact()
        finally:
            import fcntl

            self._held = False
            with contextlib.suppress(OSError):
                fcntl.fcntl(self.fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)


def _unmap_or_privatize(mapping: mmap.mmap) -> None:
    """Unmap ``mapping`` if nothing refers to it any more; otherwise make its pages anonymous in place."""
    try:
        mapping.close()
        return
    except BufferError:  # arrays (or views) still use it
        pass
    _privatize(mapping)


@cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mremap.restype = ctypes.c_void_p
    libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
    libc.munmap.restype = ctypes.c_int
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.madvise.restype = ctypes.c_int
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


def _address(mapping: mmap.mmap) -> int:
    """The address of ``mapping``'s first byte (through a temporary export of its buffer)."""
    anchor = ctypes.c_char.from_buffer(mapping)
    try:
        return ctypes.addressof(anchor)
    finally:
        del anchor


_MAP_FAILED = ctypes.c_void_p(-1).value
_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)
_MREMAP_MAYMOVE, _MREMAP_FIXED = 1, 2


def _privatize(mapping: mmap.mmap) -> None:
    """Replace the pages of ``mapping`` by anonymous pages with the same bytes, at the same addresses.

    A fresh anonymous region gets a copy of the bytes, then ``mremap`` moves its pages over the mapped
    range (``MREMAP_FIXED`` unmaps the file's pages and puts the copy in their place, atomically). The
    ``mmap`` object still covers the range and unmaps it (now anonymous memory) when the last array using
    it goes."""
    size, address = len(mapping), _address(mapping)
    libc = _libc()
    fresh = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if fresh in (None, _MAP_FAILED):
        raise MemoryError(f"could not allocate {size:,} bytes to detach a loaded model from its file")
    ctypes.memmove(fresh, address, size)
    moved = libc.mremap(fresh, size, size, _MREMAP_MAYMOVE | _MREMAP_FIXED, address)
    if moved != address:
        err = ctypes.get_errno()
        libc.munmap(fresh, size)
        raise OSError(err, f"could not detach a loaded model from its file: {os.strerror(err)}")
