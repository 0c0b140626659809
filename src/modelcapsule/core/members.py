"""How members are written and read, and the member stores that are not capsule files.

:class:`MemberSink` and :class:`MemberSource` are the two shapes formats and the golden sample are
given; a capsule's container provides both, and so do the stores here: in memory (for trial round
trips while choosing a format) and a single plain model file (``model.pkl``, ``model.skops``...) seen
as one member."""

from __future__ import annotations

import mmap
import os
import stat
from pathlib import Path
from typing import Any, Protocol

from ..errors import CapsuleFormatError, LimitExceededError
from .container import DEFAULT_LIMITS, Limits
from .exact_bytes import map_files_requested, only_owner_can_write, read_private

__all__ = ["MemberSink", "MemberSource", "MemoryMembers", "PlainFile"]


class MemberSink(Protocol):
    """Where a format writes its members (a :class:`~modelcapsule.core.container.CapsuleWriter`)."""

    def add(self, name: str, data: bytes | memoryview) -> Any: ...


class MemberSource(Protocol):
    """Read access to members (a :class:`~modelcapsule.core.container.CapsuleReader` or a plain file)."""

    limits: Limits

    def names(self) -> list[str]: ...

    def __contains__(self, name: str) -> bool: ...

    def read(self, name: str) -> bytes: ...

    def view(self, name: str) -> memoryview: ...

    def size(self, name: str) -> int: ...


class MemoryMembers:
    """Members held in memory, by reference (no copy of large buffers)."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.members: dict[str, memoryview] = {}

    def add(self, name: str, data: bytes | memoryview) -> None:
        if name in self.members:
            raise ValueError(f"member {name!r} is written twice")
        self.members[name] = memoryview(data).cast("B")

    def names(self) -> list[str]:
        return list(self.members)

    def __contains__(self, name: str) -> bool:
        return name in self.members

    def _get(self, name: str) -> memoryview:
        try:
            return self.members[name]
        except KeyError:
            raise CapsuleFormatError(f"no member {name!r}") from None

    def read(self, name: str) -> bytes:
        return self._get(name).tobytes()

    def view(self, name: str) -> memoryview:
        return self._get(name)

    def size(self, name: str) -> int:
        return self._get(name).nbytes


class PlainFile:
    """A plain model file presented as the single member ``member``.

    The file is opened once and its bytes read once into private memory: the audit and the parse see
    the same bytes, whatever happens to the path or the file meanwhile (see
    :mod:`modelcapsule.core.exact_bytes`; ``Limits(map_files=True)`` maps it instead when only its owner
    can write it)."""

    def __init__(self, path: str | Path, member: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.path = Path(path)
        self.member = member
        self.limits = limits
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            raise FileNotFoundError(f"no model file at {self.path}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise FileNotFoundError(f"no model file at {self.path} (not a regular file)")
            if st.st_size > limits.max_member_size:
                raise LimitExceededError(f"the size of {self.path.name}", st.st_size, limits.max_member_size,
                                         "max_member_size")
            self._size = st.st_size
            if self._size and map_files_requested(limits.map_files) and only_owner_can_write(st):
                self._view = memoryview(mmap.mmap(fd, 0, access=mmap.ACCESS_COPY))
            else:
                self._view = read_private(fd, 0, self._size, self.path.name)
        finally:
            os.close(fd)

    def names(self) -> list[str]:
        return [self.member]

    def __contains__(self, name: str) -> bool:
        return name == self.member

    def _check(self, name: str) -> None:
        if name != self.member:
            raise CapsuleFormatError(f"{self.path.name} is a plain file; it has no member {name!r}")

    def read(self, name: str) -> bytes:
        self._check(name)
        return bytes(self._view)

    def view(self, name: str) -> memoryview:
        self._check(name)
        return self._view

    def size(self, name: str) -> int:
        self._check(name)
        return self._size
