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

__all__ = ["GlobalsSnapshot"]

_FUNCTION_ATTRS = ("__defaults__", "__kwdefaults__", "__code__")
_MISSING = object()


def _state(obj: Any) -> dict[str, Any]:
    state: dict[str, Any] = {}
    attrs = getattr(obj, "__dict__", None)
    if attrs is not None:
        with contextlib.suppress(AttributeError, TypeError):
            state.update(attrs.items())
    for attr in _FUNCTION_ATTRS:
        value = getattr(obj, attr, _MISSING)
        if value is not _MISSING:
            state[attr] = value
    return state


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
        for obj, name, before in self._seen.values():
            after = _state(obj)
            for attr in sorted(before.keys() | after.keys()):
                old, new = before.get(attr, _MISSING), after.get(attr, _MISSING)
                if old is new:
                    continue
                changed.append(f"{name}.{attr}")
                try:
                    if old is _MISSING:
                        delattr(obj, attr)
                    else:
                        setattr(obj, attr, old)
                except (AttributeError, TypeError):
                    pass
        return changed
