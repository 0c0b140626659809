"""Auditing the pickles inside PyTorch files (``torch.save`` archives, ``torch.export`` archives).

PyTorch's own safe loader (``torch.load(weights_only=True)``) admits a fixed set of globals; anything
else is refused. This module lists, without importing or unpickling anything, the globals a PyTorch
file's pickles name that are *outside* that set, so they can be reported by ``capsule audit`` and
checked against the trust policy before torch is even asked to load the file.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from typing import Any

from ..errors import CapsuleFormatError

__all__ = ["pickle_globals", "torch_file_globals", "unsafe_torch_globals"]

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
UNRESOLVED = "<unresolved STACK_GLOBAL>"


def pickle_globals(data: bytes) -> set[str]:
    """``module.qualname`` of every global the pickle stream(s) in ``data`` would import.

    Reads every consecutive pickle in ``data`` (legacy ``torch.save`` files hold several). A
    ``STACK_GLOBAL`` whose operands cannot be followed statically is reported as ``<unresolved
    STACK_GLOBAL>``, which no policy admits.
    """
    found: set[str] = set()
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        strings: list[str] = []
        memo: dict[int, Any] = {}
        last: Any = None
        try:
            for op, arg, _pos in pickletools.genops(stream):
                if op.name in _STRING_OPS:
                    last = str(arg)
                    strings.append(last)
                elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
                    memo[int(str(arg))] = last
                elif op.name == "MEMOIZE":
                    memo[len(memo)] = last
                elif op.name in ("BINGET", "LONG_BINGET", "GET"):
                    last = memo.get(int(str(arg)))
                    if isinstance(last, str):
                        strings.append(last)
                    continue
                elif op.name in ("GLOBAL", "INST"):
                    module, name = str(arg).split(" ", 1)
                    found.add(f"{module}.{name}")
                elif op.name == "STACK_GLOBAL":
                    found.add(f"{strings[-2]}.{strings[-1]}" if len(strings) >= 2 else UNRESOLVED)
                if op.name not in _STRING_OPS and op.name not in ("BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"):
                    last = None
        except (ValueError, EOFError) as exc:
            raise CapsuleFormatError(f"the file holds a malformed pickle stream ({exc}); refusing to load it.") from exc
        if stream.tell() < len(data) and data[stream.tell() : stream.tell() + 1] != b"\x80":
            break  # legacy files follow their pickles with raw storage bytes
    return found


def torch_file_globals(data: bytes) -> set[str]:
    """Globals named by the pickles of a ``torch.save`` file (zip archive or legacy stream)."""
    if data[:4] != b"PK\x03\x04":
        return pickle_globals(data)
    found: set[str] = set()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".pkl"):
                    found |= pickle_globals(archive.read(info))
    except zipfile.BadZipFile as exc:
        raise CapsuleFormatError(f"the PyTorch archive is corrupt: {exc}") from exc
    return found


def unsafe_torch_globals(found: set[str]) -> list[str]:
    """The names in ``found`` that ``torch.load(weights_only=True)`` would not accept on its own."""
    from torch import _weights_only_unpickler
    from torch.serialization import get_safe_globals

    allowed = set(_weights_only_unpickler._get_allowed_globals())
    for entry in get_safe_globals():
        obj = entry[0] if isinstance(entry, tuple) else entry
        allowed.add(f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}")
    return sorted(n for n in found if n not in allowed and not _is_storage(n))


def _is_storage(name: str) -> bool:
    # torch.FloatStorage & co. are resolved by weights_only's own storage handling
    return name.startswith("torch.") and name.endswith("Storage") and name.count(".") == 1
