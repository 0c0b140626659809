"""numpy's ``.npy`` and ``.npz`` members read by modelcapsule itself, and the ZIP budgets around them.

skops stores every numeric array as a ``.npy`` member of its ZIP (and a sparse matrix as a nested
``.npz``, itself a ZIP of ``.npy`` files). numpy's ``np.load`` would read them, but an array reader fed
by a hostile file must refuse more than numpy does: an object dtype (which only pickle can fill), a
negative or enormous shape, a header that claims more or fewer bytes than the member holds, a member
inflated past the compression ratio. So the header is parsed here with numpy's own literal-only header
functions (``numpy.lib.format.read_array_header_*``, never ``allow_pickle``), checked against the member's
real size and :class:`~modelcapsule.core.container.Limits`, and only then are the bytes copied into a
fresh array of exactly that size.
"""

from __future__ import annotations

import ast
import functools
import io
import math
import re
import zipfile
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from ..core.container import Limits
from ..errors import CapsuleFormatError, LimitExceededError

__all__ = ["NpyHeader", "check_archive", "read_array", "read_header"]

_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 10_000
"""numpy's own cap on a header's size (``numpy.lib.format._MAX_HEADER_SIZE``)."""
_MAX_DIMS = 64
_CHUNK = 16 << 20


@dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` header declares, checked against the member holding it."""

    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype[Any]
    count: int
    nbytes: int
    offset: int
    """Where the data starts in the member."""


def check_archive(archive: zipfile.ZipFile, what: str, limits: Limits) -> int:
    """Refuse zip bombs before anything is inflated: member count, per-member, total and ratio caps. Returns
    the members' total uncompressed size."""
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise LimitExceededError(f"the number of members of {what}", len(infos), limits.max_members, "max_members")
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > limits.max_member_size:
            raise LimitExceededError(f"member {info.filename!r} of {what}", info.file_size, limits.max_member_size,
                                     "max_member_size")
        ratio = info.file_size // max(info.compress_size, 1)
        if info.compress_type != zipfile.ZIP_STORED and ratio > limits.max_compression_ratio:
            raise LimitExceededError(f"the compression ratio of {info.filename!r} in {what}", ratio,
                                     limits.max_compression_ratio, "max_compression_ratio")
    if total > limits.max_total_size:
        raise LimitExceededError(f"the uncompressed size of {what}", total, limits.max_total_size, "max_total_size")
    return total


_HEADER = re.compile(r"\{'descr': (.{1,9000}?), 'fortran_order': (True|False), "
                     r"'shape': \(((?:[0-9]{1,20}, ?){0,32}[0-9]{0,20})\), \} *\n", re.DOTALL)
"""The header ``np.save`` writes. Its shape and order are read here; a structured dtype's description
(``descr``) goes through :func:`ast.literal_eval` and numpy's ``descr_to_dtype``, once per distinct text
(a forest repeats the same node dtype in every tree). Any other header goes through numpy's own
literal-only reader."""


@functools.lru_cache(maxsize=256)
def _descr(text: str) -> np.dtype[Any]:
    if text.startswith("'") and text.endswith("'") and "'" not in text[1:-1]:
        return np.dtype(text[1:-1])
    return np.lib.format.descr_to_dtype(ast.literal_eval(text))


def _header_fields(length: bytes, text: bytes, what: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    plain = _HEADER.fullmatch(text.decode("latin1"))
    try:
        if plain is not None:
            shape = tuple(int(d) for d in plain[3].replace(" ", "").split(",") if d)
            return shape, plain[2] == "True", _descr(plain[1])
        reader = np.lib.format.read_array_header_1_0 if len(length) == 2 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(io.BytesIO(length + text), max_header_size=_MAX_HEADER)
        return shape, fortran, dtype
    except (ValueError, TypeError, SyntaxError, KeyError, MemoryError, RecursionError, EOFError) as exc:
        raise CapsuleFormatError(f"{what} has a malformed .npy header: {exc}") from None


def read_header(fh: IO[bytes], size: int, what: str, limits: Limits) -> NpyHeader:
    """Parse and check the header of a ``.npy`` member of ``size`` bytes; ``fh`` is left at its data."""
    version = fh.read(8)
    if len(version) < 8 or version[:6] != _MAGIC:
        raise CapsuleFormatError(f"{what} is not a numpy .npy array (no magic string).")
    if (version[6], version[7]) not in ((1, 0), (2, 0)):
        raise CapsuleFormatError(f"{what} is a .npy array of format version {version[6]}.{version[7]}; only 1.0 "
                                 "and 2.0 are read (re-save the model with the installed numpy).")
    length = fh.read(2 if version[6] == 1 else 4)
    header_size = int.from_bytes(length, "little")
    if len(length) not in (2, 4) or header_size > _MAX_HEADER:
        raise CapsuleFormatError(f"{what} has a .npy header of {header_size:,} bytes; numpy writes at most "
                                 f"{_MAX_HEADER:,}.")
    text = fh.read(header_size)
    if len(text) != header_size:
        raise CapsuleFormatError(f"{what} ends inside its .npy header.")
    shape, fortran, dtype = _header_fields(length, text, what)
    if not all(type(d) is int and d >= 0 for d in shape) or len(shape) > _MAX_DIMS:
        raise CapsuleFormatError(f"{what} declares the shape {shape!r}; numpy writes non-negative integers.")
    if dtype.hasobject:
        raise CapsuleFormatError(f"{what} holds an array of Python objects, which only pickle can fill; a .npy "
                                 "member written without pickle never does. Refusing it.")
    if dtype.subdtype is not None:
        raise CapsuleFormatError(f"{what} declares a sub-array dtype {dtype} for the whole array; numpy never "
                                 "writes this.")
    count = math.prod(shape)
    if count > limits.max_array_elements:
        raise LimitExceededError(f"the number of elements of {what} (shape {shape})", count,
                                 limits.max_array_elements, "max_array_elements")
    nbytes = count * dtype.itemsize
    offset = len(version) + len(length) + header_size
    if offset + nbytes != size:
        raise CapsuleFormatError(f"{what} declares shape {shape} of {dtype} ({nbytes:,} bytes) but holds "
                                 f"{size - offset:,} bytes of data: it is truncated or forged.")
    return NpyHeader(tuple(shape), bool(fortran), dtype, count, nbytes, offset)


def read_array(fh: IO[bytes], header: NpyHeader, what: str) -> np.ndarray[Any, Any]:
    """The array whose checked ``header`` was just read from ``fh``: a fresh, writable copy of its bytes."""
    flat = np.empty(header.count, dtype=header.dtype)
    target = flat.view(np.uint8) if header.nbytes else None
    done = 0
    while target is not None and done < header.nbytes:
        chunk = fh.read(min(_CHUNK, header.nbytes - done))
        if not chunk:
            raise CapsuleFormatError(f"{what} ends {header.nbytes - done:,} bytes before its array data does.")
        target[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        done += len(chunk)
    if header.fortran:
        return flat.reshape(header.shape[::-1]).transpose()
    return flat.reshape(header.shape)


def open_npz(data: bytes, what: str, limits: Limits) -> zipfile.ZipFile:
    """A nested ``.npz`` (a ZIP of ``.npy`` members), held to the same ZIP budgets as its container."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CapsuleFormatError(f"{what} is not a valid .npz archive: {exc}") from None
    check_archive(archive, what, limits)
    return archive
