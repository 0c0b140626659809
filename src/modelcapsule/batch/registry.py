"""The registry of batch file formats: one table, filled by one loop, duplicates refused.

A format is picked by an explicit name (``--format``) or by the file's extension; a ``.gz``
suffix is looked through for CSV and JSON Lines (the readers decompress on the fly).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BatchUsageError

if TYPE_CHECKING:
    from .table import TableFormat

__all__ = ["all_table_formats", "format_for_path", "get_table_format", "register_table_format"]

_FORMATS: dict[str, TableFormat] = {}
_BY_EXTENSION: dict[str, str] = {}
_BUILTIN: list[bool] = []  # holds True once the built-in formats are registered


def register_table_format(fmt: TableFormat) -> TableFormat:
    """Add a format; a second format with the same name or extension is refused."""
    if fmt.name in _FORMATS:
        raise ValueError(f"a batch file format named {fmt.name!r} is already registered")
    for ext in fmt.extensions:
        if ext in _BY_EXTENSION:
            raise ValueError(f"extension {ext!r} already belongs to the {_BY_EXTENSION[ext]!r} format")
    _FORMATS[fmt.name] = fmt
    for ext in fmt.extensions:
        _BY_EXTENSION[ext] = fmt.name
    return fmt


def all_table_formats() -> dict[str, TableFormat]:
    """Every registered format by name."""
    _ensure_builtin()
    return dict(_FORMATS)


def get_table_format(name: str) -> TableFormat:
    """The format called ``name``; the error lists the known ones."""
    _ensure_builtin()
    try:
        return _FORMATS[name.lower()]
    except KeyError:
        known = ", ".join(sorted(_FORMATS))
        raise BatchUsageError(f"unknown file format {name!r}; choose one of: {known}.") from None


def format_for_path(path: str, explicit: str | None = None) -> TableFormat:
    """The format named ``explicit``, else the one that owns ``path``'s extension."""
    if explicit:
        return get_table_format(explicit)
    _ensure_builtin()
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _BY_EXTENSION:
        return _FORMATS[_BY_EXTENSION[suffixes[-1]]]
    known = ", ".join(sorted(_BY_EXTENSION))
    what = "standard input/output" if path == "-" else repr(path)
    raise BatchUsageError(
        f"cannot tell the file format of {what} from its name; give one of {known} as its extension, "
        "or name the format (format=... / --format)."
    )


def _ensure_builtin() -> None:
    if _BUILTIN:
        return
    _BUILTIN.append(True)
    from . import csv, jsonl, npy, parquet

    for module in (csv, parquet, jsonl, npy):
        for fmt in module.FORMATS:
            register_table_format(fmt)
