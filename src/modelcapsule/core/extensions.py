"""One registry shape for every extension point (formats, frameworks, protocols, batch file formats).

Built-in modules and plug-in modules (an entry-point group) each end with a table of adapters; one loop
registers them and refuses duplicates. A registry built with ``unique_extensions=True`` also refuses two
adapters claiming the same file suffix (their ``extensions``), and finds an adapter by suffix.

Looking up a built-in adapter by name imports only the module named after it, so loading a capsule
does not import every adapter; listing imports them all, and lists them in module order (specific
frameworks before general ones).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from .environment import distribution_folders

__all__ = ["Registry", "entry_point_values", "load_attribute"]

T = TypeVar("T")


def entry_point_values(group: str) -> list[str]:
    """The values of entry-point group ``group``, as ``importlib.metadata.entry_points(group=...)`` lists them.

    The installed distributions' folders are read in the order ``importlib.metadata`` finds them
    (:func:`~.environment.distribution_folders`), the first distribution of a name wins, and each one's
    ``entry_points.txt`` is read only when it mentions the group: what ``importlib.metadata`` does for
    distributions installed as folders, without its imports (csv, email, zipfile: ~11 ms) or its parsing
    of every file (~6 ms), which every ``capsule serve`` start paid to list the REST protocols.
    Distributions inside zip files on ``sys.path`` (eggs) are not seen.
    ``tests/core/test_extensions.py`` compares the result with ``importlib.metadata`` for every group
    installed."""
    values: list[str] = []
    seen: set[str] = set()
    header = f"[{group}]"
    for directory, name, dist in distribution_folders():
        if dist in seen:
            continue
        seen.add(dist)
        try:
            with open(os.path.join(directory, name, "entry_points.txt"), encoding="utf-8") as file:
                text = file.read()
        except OSError:
            continue
        if header in text:
            values.extend(_section_values(text, group))
    return values


def _section_values(text: str, group: str) -> list[str]:
    """The values (after the first ``=``) of the ``[group]`` section of an ``entry_points.txt``."""
    values: list[str] = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
        elif section == group and "=" in line:
            values.append(line.split("=", 1)[1].strip())
    return values


class Registry(Generic[T]):
    """Adapters of one kind, by name. ``table`` is the attribute each module ends with (``FORMATS``)."""

    def __init__(self, kind: str, check: Callable[[Any], bool], table: str, builtin: tuple[str, ...],
                 group: str, *, unique_extensions: bool = False) -> None:
        self.kind, self._check, self._table, self._builtin, self._group = kind, check, table, builtin, group
        self._items: dict[str, T] = {}
        self._by_extension: dict[str, str] | None = {} if unique_extensions else None
        self._rank: dict[str, int] = {}
        self._imported: set[str] = set()
        self._complete = False

    def register(self, item: T, *, replace: bool = False, rank: int | None = None) -> None:
        """Add ``item``; a second one with the same name is refused unless ``replace``."""
        if not self._check(item):
            raise TypeError(f"{item!r} does not implement the {self.kind} protocol")
        name = item.name  # type: ignore[attr-defined]
        if name in self._items and not replace:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        if self._by_extension is not None:
            _claim_extensions(self._by_extension, self.kind, name, item.extensions)  # type: ignore[attr-defined]
        self._items[name] = item
        self._rank.setdefault(name, len(self._builtin) + 1_000 if rank is None else rank)

    def _import(self, module: str, rank: int) -> None:
        if module in self._imported:
            return
        self._imported.add(module)
        for item in getattr(importlib.import_module(module), self._table, ()):
            if item.name not in self._items:
                self.register(item, rank=rank)

    def _import_all(self) -> None:
        if self._complete:
            return
        self._complete = True
        for rank, module in enumerate([*self._builtin, *entry_point_values(self._group)]):
            self._import(module, rank)

    def get(self, name: str) -> T | None:
        """The adapter called ``name``, importing only its own module when it is a built-in one."""
        if name not in self._items:
            module = next((m for m in self._builtin if m.rsplit(".", 1)[-1] == name), None)
            if module is not None:
                self._import(module, self._builtin.index(module))
            if name not in self._items:
                self._import_all()
        return self._items.get(name)

    def first(self, wanted: Callable[[T], bool]) -> T | None:
        """The first adapter, in module order, for which ``wanted`` is true.

        Plug-ins always rank after the built-ins, so when a built-in is wanted the entry-point scan
        (~5-15 ms: it reads the metadata of every installed distribution) is not needed to know it is
        the first; the scan runs only when no built-in is wanted. (A plug-in module that replaces a
        built-in when it is imported takes effect once plug-ins are imported: by :meth:`all`, or a
        lookup no built-in answers.)"""
        for rank, module in enumerate(self._builtin):
            self._import(module, rank)
        builtins = sorted((item for item in self._items.values()
                           if self._rank[item.name] < len(self._builtin)),  # type: ignore[attr-defined]
                          key=lambda item: self._rank[item.name])  # type: ignore[attr-defined]
        for item in builtins:
            if wanted(item):
                return item
        return next((item for item in self.all() if wanted(item)), None)

    def all(self) -> list[T]:
        """Every adapter, in module order."""
        self._import_all()
        return sorted(self._items.values(), key=lambda item: self._rank[item.name])  # type: ignore[attr-defined]

    def names(self) -> list[str]:
        return [item.name for item in self.all()]  # type: ignore[attr-defined]

    def for_extension(self, suffix: str) -> T | None:
        """The adapter that claims the file suffix ``suffix`` (``".csv"``), with every adapter imported.

        Only for registries built with ``unique_extensions=True``, where a suffix has one owner.
        """
        if self._by_extension is None:
            raise TypeError(f"the {self.kind} registry does not index file suffixes")
        self._import_all()
        name = self._by_extension.get(suffix.lower())
        return None if name is None else self._items[name]

    def extensions(self) -> list[str]:
        """Every claimed file suffix, sorted (for error messages)."""
        self._import_all()
        return sorted(self._by_extension or ())


def _claim_extensions(index: dict[str, str], kind: str, name: str, extensions: Iterable[str]) -> None:
    """Give ``name`` its file suffixes in ``index``, refusing a suffix another adapter already owns."""
    wanted = [ext.lower() for ext in extensions]
    for ext in wanted:
        owner = index.get(ext)
        if owner is not None and owner != name:
            raise ValueError(f"extension {ext!r} already belongs to the {owner!r} {kind}")
    for ext in [e for e, owner in index.items() if owner == name]:
        del index[ext]  # a replaced adapter gives up the suffixes it no longer claims
    index.update(dict.fromkeys(wanted, name))


def load_attribute(target: str) -> Any:
    """The object ``target`` (``"module:attribute"``) names, importing its module on first use.

    For the package's own fixed tables of lazily imported names (public names that need an extra, URI
    handlers), so that importing modelcapsule does not import SQLAlchemy or MLflow. Never called with a
    name read from a file: names held in data go through ``security.policy.import_trusted``."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
