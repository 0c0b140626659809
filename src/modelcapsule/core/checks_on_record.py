"""A record of checks that passed, so an unchanged capsule is not re-hashed and re-run on every load.

A capsule whose model is one 244 MiB array maps it into memory in a millisecond, but hashing those
bytes costs ~130 ms and re-running its golden sample (two brute-force neighbour queries) ~150 ms, in
every process that loads it: every server worker, every batch job, every CLI call. Both outcomes are
fixed by the bytes of the file and, for the sample, by the software that computes the predictions.
When neither changed since the check passed, running it again proves nothing new, so the loader
records passed checks here and skips them while the record still applies.

What a record stands for, and why it cannot be forged by changing the capsule:

- **The file**: device, inode, size, modification time and *change* time of every file the capsule
  is read from. No process can set a change time (short of setting the system clock): every write,
  truncate, chmod or rename of the inode moves it to the current time, and a file put in place of
  another has another inode, or the same number reused with a new change time. A record
  is made only once the files' change times are :data:`SETTLE_SECONDS` in the past, so a write that
  lands in the same coarse filesystem clock tick as the check cannot go unseen.
- **The manifest**: the SHA-256 of its bytes, which list every member's hash.
- **For the golden sample, the software too**: Python, platform, CPU flags and, for every package the
  manifest lists, its installed version and the size and time of its installed file list (a rebuilt
  wheel of the same version counts as different software). Editable installs are never recorded.

The records live in ``checks/`` under ``$MODELCAPSULE_CACHE_DIR`` (default ``$XDG_CACHE_HOME/modelcapsule``),
one empty file per passed check, in a directory created ``0700`` and used only if the current user
owns it and no one else may write to it: anyone who could add records could vouch for a file.
``MODELCAPSULE_CHECK_CACHE=off`` turns recording and reuse off; ``load(..., recheck=True)`` and
``capsule verify`` always run every check.

What the record does not change: a capsule's arrays are mapped from the file, so someone able to
write the file after it was checked can alter a loaded model whether or not the check was recorded;
protect the files themselves (read-only deployment, signatures) for that.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import stat
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import environment
from .cachedir import user_cache_dir

__all__ = ["MAX_RECORDS", "SETTLE_SECONDS", "CheckCache", "Stats", "check_cache"]

SETTLE_SECONDS = 2.0
"""How long a file must have been left unchanged before a check on it is recorded."""

MAX_RECORDS = 20_000
"""Records kept before the oldest half is dropped (each is an empty file)."""


Stats = list[tuple[str, os.stat_result]]
"""``(name, stat)`` of every file a capsule is read from (``CapsuleReader.file_stats``)."""


class CheckCache:
    """Passed checks of capsule files, keyed by what they depended on (see the module docstring).

    Take the key before a check runs and record with it afterwards: :meth:`record` writes only if the
    files are still exactly as they were when the key was taken, so a file changed during the check
    is never vouched for.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def key(self, kind: str, stats: Stats, manifest: bytes, packages: Iterable[str] = ()) -> str | None:
        """The record's name for check ``kind`` on these files (and, for ``sample*``, this software)."""
        parts: list[Any] = [kind, hashlib.sha256(manifest).hexdigest()]
        for name, st in sorted(stats, key=lambda item: item[0]):
            if not stat.S_ISREG(st.st_mode):
                return None
            parts.append([name, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
        if kind.startswith("sample"):
            software = _software(tuple(sorted(packages)))
            if software is None:
                return None
            parts.append(software)
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def passed(self, key: str | None) -> bool:
        """Whether the check named by ``key`` passed before."""
        return key is not None and (self.directory / key).is_file()

    def record(self, key: str | None, kind: str, stats_now: Stats, manifest: bytes,
               packages: Iterable[str] = ()) -> None:
        """Note that the check passed, if the files are unchanged since ``key`` was taken and settled
        (unchanged for :data:`SETTLE_SECONDS`); otherwise nothing, and the check runs again next time."""
        if key is None or self.key(kind, stats_now, manifest, packages) != key:
            return
        now = time.time_ns()
        if any(now - max(st.st_ctime_ns, st.st_mtime_ns) < SETTLE_SECONDS * 1e9 for _name, st in stats_now):
            return
        if not _private_dir(self.directory, create=True):
            return
        with contextlib.suppress(OSError):  # a read-only or full disk: the check simply runs next time
            (self.directory / key).touch(mode=0o600)
            self._prune()

    def _prune(self) -> None:
        """Keep at most :data:`MAX_RECORDS` records, dropping the oldest: a forgotten record only means
        that check runs once more. Records are made on first loads only, so this runs rarely."""
        with os.scandir(self.directory) as entries:
            records = [e for e in entries if e.is_file(follow_symlinks=False)]
        if len(records) <= MAX_RECORDS:
            return
        records.sort(key=lambda e: e.stat(follow_symlinks=False).st_mtime_ns)
        for entry in records[: len(records) - MAX_RECORDS // 2]:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def check_cache() -> CheckCache | None:
    """The user's record of passed checks, or None when turned off or not private to this user."""
    if os.environ.get("MODELCAPSULE_CHECK_CACHE", "").lower() in {"0", "off", "no", "false"}:
        return None
    directory = user_cache_dir("checks")
    if directory.exists() and not _private_dir(directory, create=False):
        return None
    return CheckCache(directory)


def _private_dir(directory: Path, *, create: bool) -> bool:
    """True if ``directory`` belongs to this user and only this user may write to it."""
    if create and not directory.exists():
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            return False
    try:
        st = os.stat(directory)
    except OSError:
        return False
    owner_ok = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return stat.S_ISDIR(st.st_mode) and owner_ok and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


@functools.cache
def _software(packages: tuple[str, ...]) -> list[Any] | None:
    """What the golden sample's outcome depends on besides the capsule, or None if it cannot be pinned."""
    installed = []
    for name in packages:
        found = environment.installed_distribution(name)
        if found is None:
            return None
        version, info = found
        if (info / "direct_url.json").is_file() and b'"editable": true' in (info / "direct_url.json").read_bytes():
            return None  # its code can change without its version or file list changing
        record = info / "RECORD"
        try:
            st = os.stat(record if record.is_file() else info / "METADATA")
        except OSError:
            return None
        installed.append([name, version, st.st_size, st.st_mtime_ns])
    uname = os.uname() if hasattr(os, "uname") else None  # platform.platform() would spawn `uname -p`
    system = [uname.sysname, uname.release, uname.machine] if uname else [sys.platform, platform.machine()]
    return [sys.version, *system, _cpu_flags(), installed]


def _cpu_flags() -> str:
    """The CPU features numeric libraries dispatch on (numbers may differ between CPUs)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return hashlib.sha256(line.encode()).hexdigest()
    except OSError:
        pass
    return platform.machine()
