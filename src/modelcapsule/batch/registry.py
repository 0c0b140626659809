"""The registry of batch file formats: the one extension :class:`~modelcapsule.core.extensions.Registry`
shape, with each file suffix owned by one format.

Each built-in format module (``csv``, ``parquet``, ``jsonl``, ``npy``) ends with a ``FORMATS`` tuple;
third-party packages add theirs through the ``modelcapsule.batch_formats`` entry-point group (each entry
point names a module with a ``FORMATS`` tuple). A format is picked by an explicit name (``--format``) or
by the file's extension; a ``.gz`` suffix is looked through for CSV and JSON Lines (the readers
decompress on the fly).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.extensions import Registry
from .errors import BatchUsageError

if TYPE_CHECKING:
    from .table import TableFormat

__all__ = ["BUILTIN_MODULES", "all_table_formats", "format_for_path", "get_table_format", "register_table_format"]

BUILTIN_MODULES = (
    "modelcapsule.batch.csv",
    "modelcapsule.batch.parquet",
    "modelcapsule.batch.jsonl",
    "modelcapsule.batch.npy",
)
"""Modules whose ``FORMATS`` tables are registered on first use (they import pyarrow)."""


def _is_table_format(item: Any) -> bool:
    from .table import TableFormat  # pyarrow: only once a batch format is actually registered

    return isinstance(item, TableFormat)


_REGISTRY: Registry[TableFormat] = Registry(
    "batch file format", _is_table_format, "FORMATS", BUILTIN_MODULES, "modelcapsule.batch_formats",
    unique_extensions=True,
)


def register_table_format(fmt: TableFormat) -> TableFormat:
    """Add a format; a second format with the same name or extension is refused."""
    _REGISTRY.all()  # the built-in formats first, so a clash is reported here and not on a later lookup
    _REGISTRY.register(fmt)
    return fmt


def all_table_formats() -> dict[str, TableFormat]:
    """Every registered format by name."""
    return {fmt.name: fmt for fmt in _REGISTRY.all()}


def get_table_format(name: str) -> TableFormat:
    """The format called ``name``; the error lists the known ones."""
    fmt = _REGISTRY.get(name.lower())
    if fmt is None:
        known = ", ".join(sorted(_REGISTRY.names()))
        raise BatchUsageError(f"unknown file format {name!r}; choose one of: {known}.")
    return fmt


def format_for_path(path: str, explicit: str | None = None) -> TableFormat:
    """The format named ``explicit``, else the one that owns ``path``'s extension."""
    if explicit:
        return get_table_format(explicit)
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = _REGISTRY.for_extension(suffixes[-1]) if suffixes else None
    if fmt is not None:
        return fmt
    known = ", ".join(_REGISTRY.extensions())
    what = "standard input/output" if path == "-" else repr(path)
    raise BatchUsageError(
        f"cannot tell the file format of {what} from its name; give one of {known} as its extension, "
        "or name the format (format=... / --format)."
    )
