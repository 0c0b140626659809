"""``predict_file``: score a file with a capsule, chunk by chunk, and say how it went."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .atomic import AtomicOutput
from .errors import BatchUsageError
from .registry import format_for_path
from .request import choose_methods, model_input, rejects_format

if TYPE_CHECKING:
    from ..types import Predictor
    from .table import Source, TableFormat

__all__ = ["DEFAULT_BATCH_ROWS", "BatchSummary", "predict_file", "score_file"]

DEFAULT_BATCH_ROWS = 10_000
"""Rows per chunk: large enough that the per-call overhead of a model vanishes, small enough that a
chunk of a few hundred columns stays in the tens of megabytes."""

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class BatchSummary:
    """What a batch scoring run did: ``rows`` read, ``scored`` and ``rejected`` (set aside in the rejects
    file) among them, ``seconds`` spent reading, scoring and writing, ``rows_per_second`` over that time,
    and ``load_seconds`` spent loading and verifying the capsule before."""

    rows: int
    scored: int
    rejected: int
    seconds: float
    rows_per_second: float
    output: str
    rejects: str | None = None
    load_seconds: float = 0.0


def predict_file(
    path: PathLike,
    input: PathLike,
    output: PathLike | None = None,
    *,
    method: str | Sequence[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    columns: Sequence[str] | None = None,
    id_column: str | None = None,
    rejects: PathLike | None = None,
    input_format: str | None = None,
    output_format: str | None = None,
    trusted: Iterable[str] = (),
    on_mismatch: Literal["warn", "error", "ignore"] = "warn",
    verify: bool = True,
    trust_code: bool = False,
    progress: bool = False,
) -> BatchSummary:
    """Score ``input`` with the capsule at ``path`` and write the predictions to ``output``.

    The file streams through in chunks of ``batch_rows`` rows, so it may be larger than memory. The
    model is loaded once, through the same safe path as :func:`modelcapsule.load` (``trusted``,
    ``on_mismatch``, ``verify`` and ``trust_code`` mean the same there). Formats (CSV, Parquet, JSON
    Lines, NPY) follow the file extensions unless ``input_format``/``output_format`` name them; ``"-"``
    is standard input/output for CSV and JSON Lines. ``output`` defaults to ``<input>.predictions.<ext>``
    beside the input (standard output when reading standard input) and appears only once complete.

    ``method`` picks the outputs (default: the model's primary one, usually ``predict``); ``columns``
    names the input columns to use; ``id_column`` is copied to the output first. A row that fails
    validation raises :class:`~modelcapsule.batch.errors.RejectedRowError` naming it, unless ``rejects``
    names a file to collect such rows (with the reason) while the rest are scored.
    """
    from ..load import load_capsule

    start = time.perf_counter()
    _check_request(input, output, batch_rows, input_format, output_format)
    loaded = load_capsule(
        path, trusted=list(trusted), on_mismatch=on_mismatch, verify=verify, trust_code=trust_code
    )
    summary = score_file(
        loaded.predictor,
        input,
        output,
        method=method,
        batch_rows=batch_rows,
        columns=columns,
        id_column=id_column,
        rejects=rejects,
        input_format=input_format,
        output_format=output_format,
        progress=progress,
    )
    return replace(summary, load_seconds=time.perf_counter() - start - summary.seconds)


def score_file(
    predictor: Predictor,
    input: PathLike,
    output: PathLike | None = None,
    *,
    method: str | Sequence[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    columns: Sequence[str] | None = None,
    id_column: str | None = None,
    rejects: PathLike | None = None,
    input_format: str | None = None,
    output_format: str | None = None,
    progress: bool = False,
) -> BatchSummary:
    """:func:`predict_file` for a model already loaded (any :class:`~modelcapsule.types.Predictor`)."""
    # pyarrow and pandas are imported here, so ``import modelcapsule`` stays light.
    from .columns import plan_columns
    from .progress import track
    from .score import RejectsWriter, score_chunks

    in_fmt, out_fmt, out_path = _check_request(input, output, batch_rows, input_format, output_format)
    signature = predictor.signature
    spec = model_input(signature)
    methods = choose_methods(method, signature.output_names)
    if not out_fmt.tabular and (len(methods) != 1 or id_column is not None):
        raise BatchUsageError(
            "an NPY output holds one method's predictions and no id column; write a table format."
        )
    start = time.perf_counter()
    source: Source = sys.stdin.buffer if str(input) == "-" else Path(input)
    name = "<stdin>" if str(input) == "-" else str(input)
    reader = in_fmt.open_reader(source, name, batch_rows)
    try:
        plan = plan_columns(
            spec,
            reader,
            id_column=id_column,
            columns=None if columns is None else tuple(columns),
        )
        with ExitStack() as stack:
            sink = stack.enter_context(AtomicOutput(out_path))
            writer = out_fmt.open_writer(sink, out_path)
            rejects_writer = None
            if rejects is not None:
                rejects_fmt = rejects_format(str(rejects))
                rejects_sink = stack.enter_context(AtomicOutput(rejects))
                rejects_writer = RejectsWriter(rejects_fmt.open_writer(rejects_sink, str(rejects)))
            with track(reader, progress) as tick:
                counts = score_chunks(
                    predictor,
                    reader,
                    plan,
                    writer,
                    methods=methods,
                    tabular_output=out_fmt.tabular,
                    rejects=rejects_writer,
                    tick=tick,
                )
            writer.close()
            if rejects_writer is not None:
                rejects_writer.close()
    finally:
        reader.close()
    seconds = time.perf_counter() - start
    return BatchSummary(
        rows=counts.rows,
        scored=counts.rows - counts.rejected,
        rejected=counts.rejected,
        seconds=seconds,
        rows_per_second=counts.rows / seconds if seconds > 0 else 0.0,
        output=out_path,
        rejects=None if rejects is None else str(rejects),
    )


def _check_request(
    input: PathLike,
    output: PathLike | None,
    batch_rows: int,
    input_format: str | None,
    output_format: str | None,
) -> tuple[TableFormat, TableFormat, str]:
    if batch_rows < 1:
        raise BatchUsageError(f"batch_rows must be at least 1, not {batch_rows}.")
    if str(input) != "-" and not Path(input).is_file():  # checked before the model is loaded
        raise FileNotFoundError(f"input file {input} does not exist.")
    in_fmt = format_for_path(str(input), input_format)
    out_path = str(output) if output is not None else _default_output(str(input), in_fmt)
    streamed = output_format is None and out_path == "-"
    out_fmt = in_fmt if streamed else format_for_path(out_path, output_format)
    for end, where, fmt in (("input", str(input), in_fmt), ("output", out_path, out_fmt)):
        if where == "-" and not fmt.streams:
            raise BatchUsageError(f"{fmt.name} cannot stream through '-' as {end}; give a file path.")
    return in_fmt, out_fmt, out_path


def _default_output(input: str, fmt: TableFormat) -> str:
    if input == "-":
        return "-"
    path = Path(input)
    stem = path.name
    for suffix in reversed(path.suffixes):
        stem = stem[: -len(suffix)]
    return str(path.with_name(f"{stem}.predictions{fmt.extensions[0]}"))
