"""Find every global a pickle stream would import, without importing or executing anything.

This is the *parse* step for pickle-based formats. It walks the opcodes with a symbolic stack that only
tracks strings (so ``STACK_GLOBAL`` operands fed from the memo are resolved too) and refuses streams a
well-behaved pickler never writes: non-constant ``STACK_GLOBAL`` operands, persistent ids, extension
codes, trailing bytes after ``STOP`` (several pickles concatenated), unknown protocols, truncation.
The restricted unpickler enforces the same policy again at construction time, so the scan is the
reporting layer, not the only guard.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..errors import MALFORMED_PICKLE_ERRORS, CapsuleFormatError
from . import pickle_values

__all__ = ["PickleScan", "scan_pickle"]

_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
                         "SHORT_BINSTRING"})
_MEMO_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})
_MARK = object()
_UNKNOWN = object()


@dataclass(frozen=True)
class _Global:
    """A stack slot holding a global itself (a class or function), as opposed to an instance."""

    name: str


# Opcodes that mutate an object in place, with the depth of that object below the top of the stack.
# Applied to a global they would change a trusted class for the whole process (BUILD with slot state
# runs setattr on the class), so they are refused: a pickler only ever mutates objects it created.
_MUTATORS = {"BUILD": 2, "SETITEM": 3, "APPEND": 2}
_MARK_MUTATORS = frozenset({"SETITEMS", "APPENDS", "ADDITEMS"})


@dataclass(frozen=True)
class PickleScan:
    """What a pickle stream would import: its globals (``module.qualname``, in order of first appearance),
    its protocol, and how many out-of-band buffers it consumes."""

    globals: tuple[str, ...]
    protocol: int
    out_of_band_buffers: int


class _Stub:
    """Stands in for every global during a dry run: accepts any construction, call or state, does nothing."""

    def __new__(cls, *args: object, **kwargs: object) -> _Stub:
        return object.__new__(cls)

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> _Stub:
        return _Stub()

    def __setstate__(self, state: object) -> None:
        pass

    def __setitem__(self, key: object, value: object) -> None:
        pass

    def __getattr__(self, name: str) -> _Stub:
        return _Stub()


class _DryRun(pickle.Unpickler):
    """The C unpickler with every global replaced by :class:`_Stub`: it walks the stream at C speed,
    records each ``module.qualname`` that ``find_class`` is asked for, and imports nothing."""

    def __init__(self, file: io.BytesIO, buffers: Iterable[object], what: str) -> None:
        super().__init__(file, fix_imports=False, buffers=buffers)
        self.found: dict[str, None] = {}
        self.dtypes = pickle_values.DryRunDtypes(what)  # numpy dtype states are checked, not stubbed

    def find_class(self, module: str, name: str) -> type:
        self.found.setdefault(f"{module}.{name}", None)
        return self.dtypes.stand_in(f"{module}.{name}") or _Stub

    def persistent_load(self, pid: object) -> object:
        raise _Refused("persistent ids")


class _Refused(Exception):
    pass


_WALK_AGAIN: tuple[type[BaseException], ...] = (_Refused, CapsuleFormatError, *MALFORMED_PICKLE_ERRORS)
"""Anything the dry run stops on sends the stream to the exact opcode walk, which names the problem."""


def _counting(counter: list[int]) -> Iterator[memoryview]:
    while True:
        counter[0] += 1
        yield memoryview(b"")


def scan_pickle(data: bytes | memoryview, *, what: str = "pickle stream") -> PickleScan:
    """Scan ``data`` (one complete pickle) and return the globals it names, importing nothing.

    A dry run of the C unpickler with every global stubbed out finds them fast; a stream the dry run
    cannot walk is walked again opcode by opcode, which names the exact problem. Raises
    :class:`CapsuleFormatError` for malformed or deliberately evasive streams.
    """
    view = memoryview(data)
    stream = io.BytesIO(view)
    buffers = [0]
    runner = _DryRun(stream, _counting(buffers), what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runner.load()
            runner.dtypes.finish()
    except _WALK_AGAIN:
        return _scan_opcodes(view, what)  # the exact walk names the problem
    if stream.tell() != len(view):
        return _scan_opcodes(view, what)  # names the trailing bytes precisely
    protocol = view[1] if len(view) > 1 and view[0] == 0x80 else 0
    return PickleScan(tuple(runner.found), int(protocol), buffers[0])


def _scan_opcodes(view: memoryview, what: str) -> PickleScan:
    """The slow, exact walk: a symbolic stack over every opcode, with precise errors."""
    found: dict[str, None] = {}
    stack: list[object] = []
    memo: dict[int, object] = {}
    protocol = buffers = 0
    end = -1
    try:
        with warnings.catch_warnings():
            # pickletools only warns about invalid escapes in STRING arguments; they are malformed input
            warnings.simplefilter("error", DeprecationWarning)
            for op, arg, pos in pickletools.genops(view.tobytes()):
                name = op.name
                if name == "PROTO":
                    protocol = int(arg)  # type: ignore[arg-type]
                    if protocol > 5:
                        raise CapsuleFormatError(f"{what} uses pickle protocol {protocol}, newer than 5; refusing it.")
                elif name in ("PERSID", "BINPERSID"):
                    raise CapsuleFormatError(
                        f"{what} uses persistent ids (opcode {name} at byte {pos}), which only a custom loader "
                        "could resolve; refusing it."
                    )
                elif name in ("EXT1", "EXT2", "EXT4"):
                    raise CapsuleFormatError(
                        f"{what} refers to copyreg extension code {arg} (opcode {name} at byte {pos}); extension "
                        "codes hide which global is imported, so they are refused."
                    )
                elif name == "NEXT_BUFFER":
                    buffers += 1
                at = int(pos or 0)
                if name == "STOP":
                    end = at
                _step(op, arg, at, name, stack, memo, found, what)
    except CapsuleFormatError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError, DeprecationWarning) as exc:
        raise CapsuleFormatError(f"{what} is malformed or truncated: {exc}.") from None
    if end < 0:
        raise CapsuleFormatError(f"{what} has no STOP opcode: it is truncated.")
    if end + 1 != len(view):
        raise CapsuleFormatError(
            f"{what} has {len(view) - end - 1} byte(s) after its end (STOP at byte {end}): several pickles "
            "concatenated or hidden trailing data; refusing it."
        )
    return PickleScan(tuple(found), protocol, buffers)


def _step(op: pickletools.OpcodeInfo, arg: object, pos: int, name: str, stack: list[object],
          memo: dict[int, object], found: dict[str, None], what: str) -> None:
    """Apply one opcode to the symbolic stack, recording globals."""
    if name in _STRING_OPS:
        stack.append(arg if isinstance(arg, str) else (arg.decode("latin-1") if isinstance(arg, bytes) else _UNKNOWN))
        return
    if name == "MEMOIZE":
        if not stack:
            raise CapsuleFormatError(f"{what}: MEMOIZE on an empty stack at byte {pos}.")
        memo[len(memo)] = stack[-1]
        return
    if name in _MEMO_PUT:
        if not stack:
            raise CapsuleFormatError(f"{what}: {name} on an empty stack at byte {pos}.")
        memo[int(arg)] = stack[-1]  # type: ignore[call-overload]
        return
    if name in _MEMO_GET:
        key = int(arg)  # type: ignore[call-overload]
        if key not in memo:
            raise CapsuleFormatError(f"{what}: {name} reads memo slot {key}, which was never written (byte {pos}).")
        stack.append(memo[key])
        return
    if name in ("GLOBAL", "INST"):
        module, _, qualname = str(arg).partition(" ")
        found.setdefault(f"{module}.{qualname}", None)
        if name == "GLOBAL":
            stack.append(_Global(f"{module}.{qualname}"))
            return
    if name == "DUP":
        if not stack:
            raise CapsuleFormatError(f"{what}: DUP on an empty stack at byte {pos}.")
        stack.append(stack[-1])
        return
    _refuse_mutating_a_global(name, pos, stack, what)
    if name == "STACK_GLOBAL":
        if len(stack) < 2:
            raise CapsuleFormatError(f"{what}: STACK_GLOBAL on a short stack at byte {pos}.")
        top, below = stack.pop(), stack.pop()
        if not isinstance(below, str) or not isinstance(top, str):
            raise CapsuleFormatError(
                f"{what}: STACK_GLOBAL at byte {pos} takes its module or name from a computed value; a normal "
                "pickler never writes this, refusing it."
            )
        found.setdefault(f"{below}.{top}", None)
        stack.append(_Global(f"{below}.{top}"))
        return
    if pickle_values.apply(name, arg, pos, stack, _MARK, what):  # constants and numpy dtype states
        return
    before, after = op.stack_before, op.stack_after
    if pickletools.markobject in before:
        try:
            mark_at = len(stack) - 1 - stack[::-1].index(_MARK)
        except ValueError:
            raise CapsuleFormatError(f"{what}: {name} at byte {pos} has no matching MARK.") from None
        del stack[mark_at:]
        pops = before.index(pickletools.markobject)
    else:
        pops = len(before)
    if pops > len(stack):
        raise CapsuleFormatError(f"{what}: {name} at byte {pos} pops more than the stack holds.")
    if pops:
        del stack[-pops:]
    for item in after:
        stack.append(_MARK if item is pickletools.markobject else _UNKNOWN)


def _refuse_mutating_a_global(name: str, pos: int, stack: list[object], what: str) -> None:
    """Refuse BUILD/SETITEM(S)/APPEND(S)/ADDITEMS whose target is a global rather than a built object."""
    target: object = None
    if name in _MUTATORS and len(stack) >= _MUTATORS[name]:
        target = stack[-_MUTATORS[name]]
    elif name in _MARK_MUTATORS and _MARK in stack:
        mark_at = len(stack) - 1 - stack[::-1].index(_MARK)
        target = stack[mark_at - 1] if mark_at > 0 else None
    if isinstance(target, _Global):
        raise CapsuleFormatError(
            f"{what}: {name} at byte {pos} modifies {target.name} itself (the class or function, not an object "
            "built from it); that would change it for every model in this process. A pickler never writes "
            "this; refusing it."
        )
