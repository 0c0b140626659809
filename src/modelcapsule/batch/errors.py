"""Errors of batch scoring. Each message is one line that names the file, the column or the row at fault
and says what to do next; the command line maps them to exit codes (see :mod:`modelcapsule.cli.predict`).
"""

from __future__ import annotations

from ..errors import CapsuleError, CapsuleFormatError

__all__ = ["BatchUsageError", "InputFileError", "InputSchemaError", "RejectedRowError", "ScoringError"]


class InputSchemaError(CapsuleError, ValueError):
    """The input file's columns or dtypes do not fit the capsule's signature (missing or extra columns,
    a column whose type cannot be converted to the one the model expects, a wrong array shape)."""


class InputFileError(CapsuleFormatError):
    """The input file cannot be read: corrupt, truncated, or not in the format its name suggests."""


class RejectedRowError(CapsuleError, ValueError):
    """A row failed validation (a non-number in a numeric column, a missing value the model cannot take)
    and no rejects file was given to collect it."""

    def __init__(self, row: int, reason: str, source: str) -> None:
        self.row, self.reason, self.source = row, reason, source
        super().__init__(
            f"{source}, row {row}: {reason}. Fix the row, or pass rejects=FILE (--rejects FILE) to set "
            "rejected rows aside and score the rest."
        )


class BatchUsageError(CapsuleError, ValueError):
    """The request cannot be carried out as asked: an unknown format or method, a format that cannot
    stream through ``-``, options that do not apply to the file (``columns`` for NPY...)."""


class ScoringError(CapsuleError, RuntimeError):
    """The model raised on a chunk for a reason no single row explains (not a missing value)."""
