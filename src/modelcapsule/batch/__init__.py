"""Batch scoring: stream a CSV, Parquet, JSON Lines or NPY file through a capsule in bounded memory.

``predict_file(capsule, input, output)`` is the Python entry point; ``capsule predict`` the command
line. Readers and writers per file format live in one module each and are registered in
:mod:`modelcapsule.batch.registry`.
"""

from __future__ import annotations

from .api import DEFAULT_BATCH_ROWS, BatchSummary, predict_file, score_file
from .errors import BatchUsageError, InputFileError, InputSchemaError, RejectedRowError, ScoringError
from .registry import all_table_formats, get_table_format, register_table_format

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "BatchSummary",
    "BatchUsageError",
    "InputFileError",
    "InputSchemaError",
    "RejectedRowError",
    "ScoringError",
    "all_table_formats",
    "get_table_format",
    "predict_file",
    "register_table_format",
    "score_file",
]
