"""Find every global a pickle stream would import, and check what it would do, importing nothing.

This is the *parse and audit* step for pickle-based formats. :func:`scan_pickle` runs the stream once
through the C unpickler with every global replaced by a stand-in of
:mod:`modelcapsule.security.pickle_dryrun`, which records each name and holds every call, BUILD and
item change to the role the trust policy gives the name (numpy dtype and array states are checked on
the way). Load and audit both call it, so the audit reports exactly what the load would refuse.

When the dry run stops on a malformed stream, an exact opcode-by-opcode walk names the problem (trailing
bytes, persistent ids, extension codes, computed ``STACK_GLOBAL`` operands...). That walk only ever
improves the error message: a stream the dry run refused is refused, whatever the walk finds.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..core.container import DEFAULT_LIMITS, Limits
from ..errors import MALFORMED_PICKLE_ERRORS, CapsuleFormatError
from . import pickle_values
from .pickle_dryrun import DryRun, Refused
from .policy import TrustPolicy

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


class _DryRun(pickle.Unpickler):
    """The C unpickler with every global replaced by a stand-in of ``run``: it walks the stream at C speed,
    records each ``module.qualname`` that ``find_class`` is asked for, and imports nothing."""

    def __init__(self, file: io.BytesIO, buffers: Iterable[object], run: DryRun) -> None:
        super().__init__(file, fix_imports=False, buffers=buffers)
        self.run = run

    def find_class(self, module: str, name: str) -> type:
        return self.run.stub(f"{module}.{name}")

    def persistent_load(self, pid: object) -> object:
        raise CapsuleFormatError(f"{self.run.what} uses persistent ids, which only a custom loader could resolve; "
                                 "refusing it.")


_MALFORMED: tuple[type[BaseException], ...] = (*MALFORMED_PICKLE_ERRORS, RecursionError)


def _counting(counter: list[int]) -> Iterator[memoryview]:
    while True:
        counter[0] += 1
        yield memoryview(b"")


def scan_pickle(data: bytes | memoryview, *, what: str = "pickle stream", policy: TrustPolicy | None = None,
                limits: Limits = DEFAULT_LIMITS, extra_size: int = 0) -> PickleScan:
    """Scan ``data`` (one complete pickle): the globals it names, checked against what ``policy`` lets each
    of them do (``policy=None`` lists names only, for files whose code the caller already trusts or is
    writing itself). ``extra_size`` is the size of out-of-band buffers, part of the allocation budget.

    Raises :class:`CapsuleFormatError` for malformed or evasive streams and for any call, change or
    allocation the policy does not allow. Names the policy does not admit are returned, not raised.
    """
    view = memoryview(data)
    stream = io.BytesIO(view)
    buffers = [0]
    run = DryRun(policy, what, size=len(view) + extra_size, limits=limits)
    runner = _DryRun(stream, _counting(buffers), run)
    try:
        with run, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runner.load()
            run.dtypes.finish()
    except Refused:
        raise  # the dry run's own refusals name their reason
    except _MALFORMED as exc:
        # the exact walk names the problem when it can; it never turns the dry run's refusal into an acceptance
        _scan_opcodes(view, what)
        raise CapsuleFormatError(f"{what} could not be read: {type(exc).__name__}: {exc}") from None
    if stream.tell() != len(view):
        _scan_opcodes(view, what)  # names the trailing bytes precisely
        raise CapsuleFormatError(f"{what} has {len(view) - stream.tell():,} byte(s) after its end; refusing it.")
    protocol = view[1] if len(view) > 1 and view[0] == 0x80 else 0
    return PickleScan(tuple(run.found), int(protocol), buffers[0])


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
