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

from .errors import CapsuleFormatError

__all__ = ["PickleScan", "scan_pickle"]

_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
                         "SHORT_BINSTRING"})
_MEMO_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})
_MARK = object()
_UNKNOWN = object()


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

    def __init__(self, file: io.BytesIO, buffers: Iterable[object]) -> None:
        super().__init__(file, fix_imports=False, buffers=buffers)
        self.found: dict[str, None] = {}

    def find_class(self, module: str, name: str) -> type[_Stub]:
        self.found.setdefault(f"{module}.{name}", None)
        return _Stub

    def persistent_load(self, pid: object) -> object:
        raise _Refused("persistent ids")


class _Refused(Exception):
    pass


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
    runner = _DryRun(stream, _counting(buffers))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runner.load()
    except (_Refused, pickle.UnpicklingError, ValueError, TypeError, EOFError, KeyError, IndexError,
            AttributeError, OverflowError, MemoryError, RecursionError, UnicodeDecodeError, ImportError):
        return _scan_opcodes(view, what)
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
    except (ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError) as exc:
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
        stack.append(_UNKNOWN)
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
