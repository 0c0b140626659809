"""How members are written and read, and the member stores that are not capsule files.

:class:`MemberSink` and :class:`MemberSource` are the two shapes formats and the golden sample are
given; a capsule's container provides both, and so do the stores here: in memory (for trial round
trips while choosing a format) and a single plain model file (``model.pkl``, ``model.skops``...) seen
as one member."""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any, Protocol

from ..errors import CapsuleFormatError, LimitExceededError
from .container import DEFAULT_LIMITS, Limits

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
    """A plain model file presented as the single member ``member`` (memory-mapped, copy-on-write)."""

    def __init__(self, path: str | Path, member: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.path = Path(path)
        self.member = member
        self.limits = limits
        if not self.path.is_file():
            raise FileNotFoundError(f"no model file at {self.path}")
        size = self.path.stat().st_size
        if size > limits.max_member_size:
            raise LimitExceededError(f"the size of {self.path.name}", size, limits.max_member_size,
                                     "max_member_size")
        self._size = size
        self._map: mmap.mmap | None = None

    def names(self) -> list[str]:
        return [self.member]

    def __contains__(self, name: str) -> bool:
        return name == self.member

    def _check(self, name: str) -> None:
        if name != self.member:
            raise CapsuleFormatError(f"{self.path.name} is a plain file; it has no member {name!r}")

    def read(self, name: str) -> bytes:
        self._check(name)
        return self.path.read_bytes()

    def view(self, name: str) -> memoryview:
        self._check(name)
        if self._size == 0:
            return memoryview(b"")
        if self._map is None:
            with open(self.path, "rb") as fh:
                self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
        return memoryview(self._map)

    def size(self, name: str) -> int:
        self._check(name)
        return self._size
