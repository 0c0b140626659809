"""Constant tracking for the pickle scanner, so numpy dtype states can be checked before they are built.

numpy's ``dtype.__setstate__`` trusts the state a pickle gives it: a structured dtype whose ``fields``
entries are not ``(dtype, offset)`` pairs, whose offsets run past its item size, or whose flags claim
object references it does not have, is accepted, and the first cast of an array of that dtype reads
out of bounds (scikit-learn's ``TreePredictor.__setstate__`` casts its node array *during* unpickling,
so no check after construction can come first). Fuzzing found this; see
tests/security/test_fuzz_regressions.py.

:func:`apply` extends :mod:`modelcapsule.security.pickle_scan`'s symbolic stack with the constants a pickler
writes (ints, booleans, None, tuples, dicts) and with markers for objects made by ``numpy.dtype``.
When a BUILD targets such an object, the state is checked the way numpy should check it; a dict that
became a dtype's ``fields`` is frozen, so a later SETITEM cannot change it behind the check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CapsuleFormatError

__all__ = ["DryRunDtypes", "apply", "dtype_facts"]

_INT_OPS = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"})
_DTYPE_MAKERS = frozenset({"numpy.dtype"})
_FLAG_BITS = 0x0B  # has-object/refcount, list-pickle, needs-init: the bits a container inherits from its items


class _Opaque:
    """A value the scanner cannot see (the result of a call, a list...)."""


OPAQUE = _Opaque()


@dataclass(eq=False)
class _Dict:
    """A dict built by EMPTY_DICT/DICT and SETITEM(S) from values the scanner can see."""

    items: dict[str, Any] = field(default_factory=dict)
    opaque: bool = False
    frozen: bool = False


@dataclass(eq=False)
class _Dtype:
    """An object made by ``numpy.dtype(spec, ...)``; ``itemsize``/``flags`` once known."""

    spec: str | None
    itemsize: int | None = None
    flags: int | None = None
    built: bool = False


def _spec_dtype(spec: Any) -> np.dtype[Any] | None:
    if not isinstance(spec, str) or len(spec) > 32:
        return None
    try:
        return np.dtype(spec)
    except (TypeError, ValueError, SyntaxError):
        return None


def _bad(what: str, pos: int, problem: str) -> CapsuleFormatError:
    where = f"built at byte {pos}" if pos >= 0 else "in the stream"
    return CapsuleFormatError(
        f"{what}: the numpy dtype {where} {problem}; numpy would accept it and then read out of bounds. The "
        "file is corrupt or hostile; refusing it."
    )


def _check_state(dt: _Dtype, state: Any, pos: int, what: str) -> None:
    """Check a dtype's BUILD state as numpy writes it: (version, endian, subarray, names, fields, elsize,
    alignment, flags[, metadata])."""
    if not isinstance(state, tuple) or len(state) not in (8, 9):
        raise _bad(what, pos, "has a state that is not the 8- or 9-item tuple numpy writes")
    _version, endian, subarray, names, fields, elsize, alignment, flags = state[:8]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (elsize, alignment, flags)):
        raise _bad(what, pos, "has a non-integer item size, alignment or flags")
    if not isinstance(endian, str) or elsize < -1:
        raise _bad(what, pos, f"has endianness {endian!r} and item size {elsize}")
    base = _spec_dtype(dt.spec)
    size = elsize if elsize >= 0 else (base.itemsize if base is not None else None)
    expected_flags: int | None = base.flags if base is not None and fields is None and subarray is None else None
    if fields is not None or names is not None:
        if not isinstance(fields, _Dict) or fields.opaque or not isinstance(names, tuple) or size is None:
            raise _bad(what, pos, "has fields that are not a literal dict with a names tuple")
        if not all(isinstance(n, str) and n in fields.items for n in names):
            raise _bad(what, pos, "names fields that it does not define")
        expected_flags = 0
        for key, entry in fields.items.items():
            if not (isinstance(entry, tuple) and len(entry) in (2, 3) and _as_dtype(entry[0]) is not None
                    and isinstance(entry[1], int) and not isinstance(entry[1], bool)):
                raise _bad(what, pos, f"has field {key!r} that is not a (dtype, offset) pair")
            sub, offset = _as_dtype(entry[0]), entry[1]
            assert sub is not None
            if sub.itemsize is None or sub.flags is None:
                raise _bad(what, pos, f"has field {key!r} of a dtype whose size is unknown")
            if offset < 0 or offset + sub.itemsize > size:
                raise _bad(what, pos, f"puts field {key!r} at bytes {offset}..{offset + sub.itemsize} of a "
                                      f"{size}-byte item")
            expected_flags |= sub.flags & _FLAG_BITS
        fields.frozen = True
        if flags & _FLAG_BITS != expected_flags:
            raise _bad(what, pos, f"claims flags {flags} that its fields do not have")
        expected_flags = None
    if subarray is not None:
        if not (isinstance(subarray, tuple) and len(subarray) == 2 and _as_dtype(subarray[0]) is not None
                and isinstance(subarray[1], tuple)
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in subarray[1])):
            raise _bad(what, pos, "has a sub-array that is not (dtype, shape)")
        sub = _as_dtype(subarray[0])
        assert sub is not None
        if sub.itemsize is None or size is None or math.prod(subarray[1]) * sub.itemsize != size:
            raise _bad(what, pos, f"has a sub-array {subarray[1]} that does not fill its {size}-byte item")
        if sub.flags is None or flags & _FLAG_BITS != sub.flags & _FLAG_BITS:
            raise _bad(what, pos, f"claims flags {flags} that its sub-array does not have")
        expected_flags = None
    if expected_flags is not None and flags != expected_flags:
        raise _bad(what, pos, f"claims flags {flags}, not the {expected_flags} of {dt.spec!r}")
    if fields is None and subarray is None and base is None:
        raise _bad(what, pos, f"has an unknown type {dt.spec!r}")
    dt.itemsize, dt.flags, dt.built = size, flags, True


def _as_dtype(obj: Any) -> _Dtype | None:
    """The dtype marker of a scanner value or of a dry-run stand-in, else None."""
    if isinstance(obj, _Dtype):
        return obj
    marker = getattr(type(obj), "__dict__", {}).get("_mc_is_dtype") and vars(obj).get("_mc_dtype")
    return marker if isinstance(marker, _Dtype) else None


def dtype_facts(obj: Any) -> tuple[int, int] | None:
    """``(itemsize, flags)`` of a dry-run dtype whose state was checked (or a plain type string's), else None."""
    marker = _as_dtype(obj)
    if marker is None:
        return None
    if marker.built:
        return (marker.itemsize, marker.flags) if marker.itemsize is not None and marker.flags is not None else None
    base = _spec_dtype(marker.spec)
    return (base.itemsize, base.flags) if base is not None and base.fields is None else None


class _Permissive:
    """Accepts any construction, call, state or item, and does nothing (as the scanner's stubs do)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> _Permissive:
        return _Permissive()

    def __setstate__(self, state: object) -> None:
        pass

    def __setitem__(self, key: object, value: object) -> None:
        pass

    def __getattr__(self, name: str) -> _Permissive:
        return _Permissive()


class DryRunDtypes:
    """Stand-ins for ``numpy.dtype`` (and ``copyreg._reconstructor`` building one) in the scanner's dry run
    of the C unpickler: they receive the exact state numpy would be given, and check it."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._fields: list[tuple[dict[Any, Any], dict[Any, Any]]] = []
        checker = self

        class DtypeStandIn:
            _mc_is_dtype = True
            _mc_dtype: _Dtype

            def __new__(cls, *args: Any, **kwargs: Any) -> DtypeStandIn:
                obj = object.__new__(cls)
                obj._mc_dtype = _Dtype(args[0] if args and isinstance(args[0], str) else None)
                return obj

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                pass

            def __setstate__(self, state: Any) -> None:
                checker.check(self._mc_dtype, state)

        class ReconstructorStandIn:
            def __new__(cls, *args: Any, **kwargs: Any) -> Any:
                if any(a is DtypeStandIn for a in args[:2]):
                    return DtypeStandIn(args[2] if len(args) > 2 else None)
                return _Permissive()

        self._dtype, self._reconstructor = DtypeStandIn, ReconstructorStandIn

    def make(self, spec: str | None) -> Any:
        """A dtype stand-in for ``numpy.dtype(spec, ...)`` (its BUILD state will be checked)."""
        return self._dtype(spec)

    def known(self, dtype: np.dtype[Any]) -> Any:
        """A stand-in for a dtype modelcapsule parsed and checked itself (a ``.npy`` header's), with its real
        item size and flags (it needs no BUILD)."""
        obj = self._dtype(None)
        marker = obj._mc_dtype
        marker.itemsize, marker.flags, marker.built = dtype.itemsize, dtype.flags, True
        return obj

    def stand_in(self, name: str) -> type | None:
        """The class to hand the dry run for global ``name``, or None for the scanner's plain stub."""
        if name in _DTYPE_MAKERS or name.startswith("numpy.dtypes."):
            return self._dtype
        if name == "copyreg._reconstructor":
            return self._reconstructor
        return None

    def check(self, dt: _Dtype, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 4 and isinstance(state[4], dict):
            fields = state[4]
            opaque = not all(isinstance(k, str) for k in fields)
            state = (*state[:4], _Dict(items=dict(fields), opaque=opaque), *state[5:])
            self._fields.append((fields, dict(fields)))
        _check_state(dt, state, -1, self.what)

    def finish(self) -> None:
        """After the dry run: no dict that became a dtype's fields may have changed since."""
        for live, seen in self._fields:
            if live.keys() != seen.keys() or any(live[k] is not seen[k] for k in seen):
                raise CapsuleFormatError(
                    f"{self.what}: a dict that already became a numpy dtype's fields was changed afterwards; "
                    "refusing it."
                )


def _last_mark(stack: list[Any], mark: object) -> int:
    return len(stack) - 1 - stack[::-1].index(mark)


def _pop_mark(stack: list[Any], mark: object) -> list[Any]:
    at = _last_mark(stack, mark)
    items = stack[at + 1 :]
    del stack[at:]
    return items


def _maker(obj: Any) -> bool:
    """Whether ``obj`` is a global that makes numpy dtypes when called (or instantiated)."""
    name = getattr(obj, "name", None)
    return isinstance(name, str) and (name in _DTYPE_MAKERS or name.startswith("numpy.dtypes."))


def _made(func: Any, args: Any) -> Any:
    """The symbolic result of calling ``func(*args)``: a dtype marker when it makes a dtype."""
    items = args if isinstance(args, tuple) else ()
    if _maker(func):
        return _Dtype(items[0] if items and isinstance(items[0], str) else None)
    if getattr(func, "name", None) == "copyreg._reconstructor" and any(_maker(a) for a in items[:2]):
        return _Dtype(items[2] if len(items) > 2 and isinstance(items[2], str) else None)
    return OPAQUE


def apply(name: str, arg: Any, pos: int, stack: list[Any], mark: object, what: str) -> bool:
    """Apply ``name`` to the symbolic stack if it carries a value this module tracks; True if handled.

    Callers have already checked stack depths for the generic opcodes; anything unusual (a missing
    MARK, a short stack) is left to the generic path by returning False.
    """
    if name in _INT_OPS:
        stack.append(arg if isinstance(arg, int) else OPAQUE)
        return True
    if name in ("NONE", "NEWTRUE", "NEWFALSE"):
        stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        return True
    if name == "EMPTY_TUPLE":
        stack.append(())
        return True
    if name in ("TUPLE1", "TUPLE2", "TUPLE3"):
        n = int(name[-1])
        if len(stack) < n or mark in stack[-n:]:
            return False
        popped = tuple(stack[-n:])
        del stack[-n:]
        stack.append(popped)
        return True
    if name in ("TUPLE", "DICT") and mark in stack:
        items = _pop_mark(stack, mark)
        if name == "TUPLE":
            stack.append(tuple(items))
        else:
            stack.append(_set_items(_Dict(), items, pos, what))
        return True
    if name == "EMPTY_DICT":
        stack.append(_Dict())
        return True
    if name == "SETITEM" and len(stack) >= 3:
        value = stack.pop()
        key = stack.pop()
        _set_items(stack[-1], [key, value], pos, what)
        return True
    if name == "SETITEMS" and mark in stack and _last_mark(stack, mark) > 0:
        _set_items(stack[_last_mark(stack, mark) - 1], _pop_mark(stack, mark), pos, what)
        return True
    if name in ("REDUCE", "NEWOBJ") and len(stack) >= 2:
        args = stack.pop()
        stack.append(_made(stack.pop(), args))
        return True
    if name == "NEWOBJ_EX" and len(stack) >= 3:
        del stack[-1]  # keyword arguments
        args = stack.pop()
        stack.append(_made(stack.pop(), args))
        return True
    if name == "OBJ" and mark in stack and _last_mark(stack, mark) < len(stack) - 1:
        called = _pop_mark(stack, mark)
        stack.append(_made(called[0], tuple(called[1:])))
        return True
    if name == "INST" and mark in stack:
        _pop_mark(stack, mark)
        maker = str(arg).replace(" ", ".") in _DTYPE_MAKERS or str(arg).startswith("numpy.dtypes ")
        stack.append(_Dtype(None) if maker else OPAQUE)
        return True
    if name == "BUILD" and len(stack) >= 2:
        state, target = stack.pop(), stack[-1]
        if isinstance(target, _Dtype):
            _check_state(target, state, pos, what)
        return True
    return False


def _set_items(target: Any, items: list[Any], pos: int, what: str) -> Any:
    if not isinstance(target, _Dict):
        return target
    if target.frozen:
        raise CapsuleFormatError(
            f"{what}: SETITEM at byte {pos} changes a dict that already became a numpy dtype's fields; "
            "refusing it."
        )
    for key, value in zip(items[::2], items[1::2], strict=False):
        if isinstance(key, str):
            target.items[key] = value
        else:
            target.opaque = True
    if len(items) % 2:
        target.opaque = True
    return target
