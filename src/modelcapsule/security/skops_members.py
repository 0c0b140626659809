"""The members of a skops file, read with modelcapsule's own readers, and the checks on the plain data they hold.

:class:`Members` hands the schema walk's backends ``.npy`` headers and arrays (:mod:`.npy`), nested ``.npz``
archives (sparse matrices) and raw bytes, each held to the ZIP budgets. The functions below check what a
sparse archive and a seed sequence hold before anything is built from them.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np

from ..core.container import Limits
from ..errors import CapsuleFormatError, LimitExceededError
from .npy import NpyHeader, check_archive, open_npz, read_array, read_header
from .pickle_dryrun import Obj

__all__ = ["SPARSE_KEYS", "Members", "check_seed_seq", "check_sparse_indices", "read_schema", "sparse_facts"]

SCHEMA = "schema.json"
_ZIP_ERRORS = (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError, zlib.error)
SEED_KEYS = frozenset({"entropy", "spawn_key", "pool_size", "n_children_spawned"})
SPARSE_KEYS = {"csr": ("data", "indices", "indptr"), "csc": ("data", "indices", "indptr"),
           "bsr": ("data", "indices", "indptr"), "dia": ("data", "offsets"), "coo": ("data", "row", "col")}


class Members:
    """The ``.npy``, ``.npz`` and ``.bin`` members of one skops ZIP, read with our own readers."""

    def __init__(self, archive: zipfile.ZipFile, what: str, limits: Limits, size: int = 0) -> None:
        self.archive, self.what, self.limits = archive, what, limits
        self.size = size
        self._headers: dict[str, NpyHeader] = {}
        """The members' total uncompressed size: what the allocation budget is measured against (inflating
        is held to ``max_compression_ratio`` separately)."""

    def info(self, member: str) -> zipfile.ZipInfo:
        try:
            return self.archive.getinfo(member)
        except KeyError:
            raise CapsuleFormatError(f"{self.what} names a member {member[:80]!r} that it does not have.") from None

    @contextlib.contextmanager
    def open(self, member: str) -> Iterator[tuple[IO[bytes], int, str]]:
        """The member's stream, its size and how to name it; ZIP errors become format errors."""
        info = self.info(member)
        what = f"{self.what} member {member}"
        try:
            with self.archive.open(info) as fh:
                yield fh, info.file_size, what
        except RecursionError:
            raise
        except _ZIP_ERRORS as exc:  # a bad CRC, an unsupported compression or encryption, a truncated stream
            raise CapsuleFormatError(f"{what} cannot be read: {type(exc).__name__}: {exc}") from None

    def header(self, member: str) -> NpyHeader:
        header = self._headers.get(member)
        if header is None:
            with self.open(member) as (fh, size, what):
                header = self._headers[member] = read_header(fh, size, what, self.limits)
        return header

    def array(self, member: str) -> np.ndarray[Any, Any]:
        header = self._headers.get(member)  # parsed once per reading of the same bytes
        with self.open(member) as (fh, size, what):
            if header is None:
                header = self._headers[member] = read_header(fh, size, what, self.limits)
            else:
                fh.seek(header.offset)
            return read_array(fh, header, what)

    def small(self, member: str) -> np.ndarray[Any, Any]:
        """A member that only ever holds a few bytes (a sparse archive's format, shape or flag)."""
        with self.open(member) as (fh, size, what):
            header = read_header(fh, size, what, self.limits)
            if header.nbytes > 64:
                raise CapsuleFormatError(f"{what} holds {header.nbytes:,} bytes where a few are expected.")
            return read_array(fh, header, what)

    def read(self, member: str) -> bytes:
        with self.open(member) as (fh, _size, _what):
            return fh.read()

    def npz(self, member: str) -> Members:
        what = f"{self.what} member {member}"
        return Members(open_npz(self.read(member), what, self.limits), what, self.limits)


def read_schema(data: bytes, what: str, limits: Limits) -> tuple[dict[str, Any], Members]:
    """The parsed ``schema.json`` of a skops file and its members, after the ZIP budgets are checked."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        size = check_archive(archive, what, limits)
        try:
            info = archive.getinfo(SCHEMA)
        except KeyError:
            raise CapsuleFormatError(f"{what} is not a skops file: it has no {SCHEMA}.") from None
        if info.file_size > limits.max_manifest_size:
            raise LimitExceededError(f"the size of {what}'s {SCHEMA}", info.file_size, limits.max_manifest_size,
                                     "max_manifest_size")
        schema = json.loads(archive.read(info))
    except RecursionError:
        raise  # JSON nested past Python's limit: the loader reports it as a malformed payload
    except (*_ZIP_ERRORS, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CapsuleFormatError(f"{what} is not a valid skops file: {exc}") from None
    if not isinstance(schema, dict):
        raise CapsuleFormatError(f"{what}'s {SCHEMA} is not a JSON object.")
    return schema, Members(archive, what, limits, max(size, len(data)))


def sparse_facts(npz: Members, refuse: Callable[[str], Exception]) -> tuple[str, bool, tuple[int, int]]:
    """The format, array-ness and shape of a sparse ``.npz``, read from its small members."""
    names = set(npz.archive.namelist())
    fmt_array = npz.small("format.npy") if "format.npy" in names else None
    if fmt_array is None or fmt_array.shape != () or fmt_array.dtype.kind != "S":
        raise refuse("its sparse archive has no format")
    fmt = bytes(fmt_array[()]).decode("ascii", "replace")
    if fmt not in SPARSE_KEYS:
        raise refuse(f"its sparse format {fmt[:10]!r} is not one of {sorted(SPARSE_KEYS)}")
    expected = {f"{k}.npy" for k in (*SPARSE_KEYS[fmt], "format", "shape")}
    if not expected <= names <= expected | {"_is_array.npy"}:
        raise refuse(f"its sparse archive holds {sorted(names)[:8]}, not the members of a {fmt} matrix")
    shape = npz.small("shape.npy")
    if shape.ndim != 1 or shape.size != 2 or shape.dtype.kind not in "iu" or (shape < 0).any():
        raise refuse(f"its sparse shape is {shape.tolist()!r}")
    is_array = False
    if "_is_array.npy" in names:
        flag = npz.small("_is_array.npy")
        if flag.shape != () or flag.dtype.kind != "b":
            raise refuse("its sparse _is_array flag is not a boolean")
        is_array = bool(flag[()])
    return fmt, is_array, (int(shape[0]), int(shape[1]))


def check_sparse_indices(fmt: str, npz: Members, shape: tuple[int, int],
                          refuse: Callable[[str], Exception]) -> None:
    """The index arrays of a CSR, CSC or COO matrix lie inside its shape (scipy's own full check, done on the
    file's arrays so the audit refuses what loading would; BSR and DIA are checked after loading)."""
    data = npz.header("data.npy")
    if fmt in ("csr", "csc"):
        major, minor = shape if fmt == "csr" else shape[::-1]
        indptr, indices = npz.array("indptr.npy"), npz.array("indices.npy")
        if (indptr.ndim != 1 or indptr.size != major + 1 or indices.ndim != 1 or data.shape != indices.shape
                or indptr[0] != 0 or indptr[-1] != indices.size or (np.diff(indptr) < 0).any()):
            raise refuse(f"its {fmt} index pointers do not describe its {indices.size} stored entries")
        if indices.size and (indices.min() < 0 or indices.max() >= minor):
            raise refuse(f"its {fmt} indices point outside the {minor} {'columns' if fmt == 'csr' else 'rows'}")
    elif fmt == "coo":
        for key, size in (("row", shape[0]), ("col", shape[1])):
            index = npz.array(f"{key}.npy")
            if index.shape != data.shape or (index.size and (index.min() < 0 or index.max() >= size)):
                raise refuse(f"its coo {key} indices point outside the shape {shape}")


def _small_int(value: Any) -> bool:
    """A non-negative Python integer of at most 4096 bits, or a numpy integer (sklearn seeds with those)."""
    if isinstance(value, Obj):
        return value.name == "numpy.generic" and value.dtype is not None and value.dtype.kind in "iu"
    return type(value) is int and 0 <= value < 1 << 4096


def check_seed_seq(state: dict[str, Any], refuse: Callable[[str], Exception]) -> None:
    """A SeedSequence's state: small integers only (its pool is allocated from ``pool_size``)."""
    if not set(state) <= SEED_KEYS:
        raise refuse(f"its seed sequence has the keys {sorted(map(str, state))[:6]}")
    entropy = state.get("entropy")
    words = entropy if isinstance(entropy, list | tuple) else [] if entropy is None else [entropy]
    spawn = state.get("spawn_key", ())
    numbers = [*words, *(spawn if isinstance(spawn, list | tuple) else [spawn]),
               state.get("pool_size", 4), state.get("n_children_spawned", 0)]
    if (len(words) > 1024 or not isinstance(spawn, list | tuple) or len(spawn) > 1024
            or not all(_small_int(n) for n in numbers)
            or type(state.get("pool_size", 4)) is not int or not 4 <= state.get("pool_size", 4) <= 1024):
        raise refuse("its seed sequence is not made of small non-negative integers (pool_size 4..1024)")
