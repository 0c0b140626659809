"""Detect and undo changes that unpickling made to the trusted classes and functions themselves.

A pickle can apply BUILD (and SETITEMS, APPENDS...) to a global rather than to an object it built:
with "slot state", BUILD runs ``setattr`` on the class, so a file made only of trusted names could
replace a method of a trusted class (or the defaults of a trusted function) for every model in the
process. The audit refuses such streams (:mod:`modelcapsule.security.pickle_scan`); as a second line, the
restricted unpickler records every global it hands out and, once loading ends, restores any that
changed and refuses the file.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..errors import CapsuleFormatError

__all__ = ["GlobalsSnapshot", "TamperError"]


class TamperError(CapsuleFormatError):
    """A trusted global was changed and could not be put back: the process must not go on using it."""

    def __init__(self, changed: list[str], unrestored: list[str]) -> None:
        self.changed, self.unrestored = changed, unrestored
        super().__init__(
            f"loading changed trusted globals ({', '.join(changed)}) and {', '.join(unrestored)} could not be "
            "restored; this process's copies of those classes are no longer trustworthy. Restart it."
        )

_FUNCTION_ATTRS = ("__defaults__", "__kwdefaults__", "__code__")
_CLASS_ATTRS = ("__bases__", "__mro__", "__class__")
_DERIVED = frozenset({"__mro__"})
"""Compared but not restored directly: ``__mro__`` follows from ``__bases__``, which is restored."""
_MISSING = object()


def _state(obj: Any) -> dict[str, Any]:
    """Everything about a global that a stream could change: its whole ``__dict__``, and for a class its
    bases, method resolution order and metaclass; for a function its defaults and code."""
    state: dict[str, Any] = {}
    attrs = getattr(obj, "__dict__", None)
    if attrs is not None:
        with contextlib.suppress(AttributeError, TypeError):
            state.update(attrs.items())
    for attr in _FUNCTION_ATTRS:
        value = getattr(obj, attr, _MISSING)
        if value is not _MISSING:
            state[attr] = value
    if isinstance(obj, type):
        for attr in _CLASS_ATTRS:
            state[attr] = getattr(obj, attr)
    else:
        state["__class__"] = type(obj)
    return state


def _same(old: Any, new: Any) -> bool:
    if old is new:
        return True
    # __bases__ and __mro__ are new tuples on each read: compare their members by identity
    return (type(old) is tuple and type(new) is tuple and len(old) == len(new)
            and all(a is b for a, b in zip(old, new, strict=True)))


class GlobalsSnapshot:
    """The attributes of every global handed to the unpickler, as they were when first handed out."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Any, str, dict[str, Any]]] = {}

    def record(self, obj: Any, name: str) -> None:
        if id(obj) not in self._seen:
            self._seen[id(obj)] = (obj, name, _state(obj))

    def undo_changes(self) -> list[str]:
        """Restore every recorded global whose attributes changed; return ``name.attribute`` for each."""
        changed: list[str] = []
        unrestored: list[str] = []
        for obj, name, before in self._seen.values():
            after = _state(obj)
            for attr in sorted(before.keys() | after.keys()):
                old, new = before.get(attr, _MISSING), after.get(attr, _MISSING)
                if _same(old, new):
                    continue
                changed.append(f"{name}.{attr}")
                if attr in _DERIVED:
                    continue
                try:
                    if old is _MISSING:
                        delattr(obj, attr)
                    else:
                        setattr(obj, attr, old)
                except (AttributeError, TypeError):
                    unrestored.append(f"{name}.{attr}")
        if unrestored:
            raise TamperError(changed, unrestored)
        return changed
