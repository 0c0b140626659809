"""Ray Data: score files or folders of Parquet/CSV with one loaded model per actor (``capsule predict --ray``).

The driver plans once (which columns, which dtypes, which outputs: the batch module's
:func:`~modelcapsule.batch.columns.plan_columns` against every input file's header or schema, so a file
that does not fit the model is named before any work starts). Ray Data then reads the files in parallel,
streams batches through a pool of :class:`~.scorer.CapsuleScorer` actors (each loads the capsule once,
with every check) and hands the scored batches back in input order; the driver writes them with the
batch module's writers to one output file, atomically, and the rejected rows to the rejects file with
their row numbers in the input. The output therefore has the same columns, rows and rejects as
``capsule predict`` on the same input (several files or a folder read as one table, files in name order).

Memory stays bounded: Ray Data's streaming executor keeps a bounded number of batches in flight, and the
driver holds one scored batch at a time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from ...batch import DEFAULT_BATCH_ROWS, BatchSummary, BatchUsageError, InputSchemaError, RejectedRowError
from ...batch.atomic import AtomicOutput
from ...batch.columns import ColumnPlan, plan_columns
from ...batch.registry import format_for_path
from ...batch.request import choose_methods, model_input, rejects_format
from ...batch.score import RejectsWriter
from ...batch.table import ColumnKind, Reject, TableFormat
from ...errors import CapsuleError, CapsuleFormatError
from .cluster import ray_session
from .scorer import INPUT, REASON, CapsuleScorer

__all__ = ["RAY_FORMATS", "expand_inputs", "predict_dataset"]

RAY_FORMATS = ("csv", "parquet")
PathLike = str | os.PathLike[str]


def expand_inputs(inputs: Iterable[PathLike], input_format: str | None = None) -> tuple[list[Path], TableFormat]:
    """Input files in order: files as given, each folder's files of the input format by name (recursively,
    hidden ones skipped). All must share one format, CSV or Parquet."""
    files: list[Path] = []
    fmt: TableFormat | None = None
    for item in inputs:
        path = Path(item)
        if str(item) == "-":
            raise BatchUsageError("--ray reads files or folders, not standard input.")
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and not _hidden(p, path) and _owned(p, input_format)
            )
            if not found:
                raise BatchUsageError(f"folder {path} holds no CSV or Parquet file to score.")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"input file {item} does not exist.")
    if not files:
        raise BatchUsageError("name at least one input file or folder.")
    for file in files:
        this = format_for_path(str(file), input_format)
        if this.name not in RAY_FORMATS:
            raise BatchUsageError(f"{file}: --ray reads CSV and Parquet, not {this.name}; score it without --ray.")
        if fmt is not None and this.name != fmt.name:
            raise BatchUsageError(f"the inputs mix {fmt.name} and {this.name} files; score one format at a time.")
        fmt = this
    assert fmt is not None
    return files, fmt


def predict_dataset(
    path: PathLike,
    inputs: Sequence[PathLike],
    output: PathLike,
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
    address: str | None = None,
    actors: int | None = None,
    num_cpus: int | None = None,
) -> BatchSummary:
    """Score ``inputs`` (files or folders of CSV or Parquet) with the capsule at ``path`` on Ray Data and
    write one ``output`` file: the same columns, rows and rejects as :func:`modelcapsule.predict_file`.
    ``seconds`` in the summary counts the cluster's start (when one is started), reading, scoring and
    writing; ``load_seconds`` the check of the capsule in the driver before.

    ``address`` joins a running cluster (default: start a local one with ``num_cpus`` CPUs and stop it at
    the end); ``actors`` sets how many actors each load the model (default: one per CPU, leaving one for
    reading). The other arguments mean what they mean for :func:`~modelcapsule.predict_file`.
    """
    import modelcapsule as mc

    start = time.perf_counter()
    if batch_rows < 1:
        raise BatchUsageError(f"batch_rows must be at least 1, not {batch_rows}.")
    files, in_fmt = expand_inputs(inputs, input_format)
    out_path = str(output)
    if out_path == "-":
        raise BatchUsageError("--ray writes a file; give -o OUTPUT.")
    out_fmt = format_for_path(out_path, output_format)
    if not out_fmt.tabular:
        raise BatchUsageError(f"--ray writes tables (CSV, Parquet, JSON Lines), not {out_fmt.name}.")
    rejects_fmt = None if rejects is None else rejects_format(str(rejects))
    capsule = Path(path).resolve()
    # Loaded once here, with every check, before any cluster starts: a capsule that fails a check fails
    # fast with the local path's own error (and exit code), not as a dead actor. Then dropped.
    loaded = mc.load_capsule(
        capsule, trusted=list(trusted), on_mismatch=on_mismatch, verify=verify, trust_code=trust_code
    )
    signature = loaded.predictor.signature
    del loaded
    load_seconds = time.perf_counter() - start
    spec = model_input(signature)
    methods = choose_methods(method, signature.output_names)
    plan = _plan(files, in_fmt, spec, batch_rows, columns, id_column)

    with ray_session(address, num_cpus=num_cpus):
        import ray
        import ray.data

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # row numbers and output order follow the input
        context.enable_progress_bars = progress
        if not progress:  # Ray Data's start and finish lines are progress too
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        dataset = _read(ray.data, files, in_fmt, plan)
        kind: ColumnKind = "typed" if in_fmt.name == "parquet" else "text"
        options: dict[str, Any] = {
            "trusted": tuple(trusted),
            "on_mismatch": on_mismatch,
            "verify": verify,
            "trust_code": trust_code,
        }
        pool = actors or max(1, int(ray.cluster_resources().get("CPU", 2)) - 1)  # type: ignore[no-untyped-call]
        scored = dataset.map_batches(
            CapsuleScorer,
            fn_constructor_kwargs={"path": str(capsule), "plan": plan, "kind": kind, "methods": methods, **options},
            batch_format="pyarrow",
            batch_size=batch_rows,
            compute=ray.data.ActorPoolStrategy(size=pool),
            num_cpus=1,
        )

        def empty_output() -> pa.Table:  # Ray hands back no batch at all for an empty input
            scorer = CapsuleScorer(str(capsule), plan=plan, kind=kind, methods=methods, **options)
            return scorer(_empty_batch(files[0], in_fmt, plan)).drop_columns([REASON, INPUT])

        try:
            batches = scored.iter_batches(batch_size=None, batch_format="pyarrow")
            rows, rejected = _write(batches, out_path, out_fmt, rejects, rejects_fmt, plan, empty_output)
        except Exception as exc:
            raise _unwrap(exc) from None
    seconds = time.perf_counter() - start - load_seconds
    return BatchSummary(
        rows=rows,
        scored=rows - rejected,
        rejected=rejected,
        seconds=seconds,
        rows_per_second=rows / seconds if seconds > 0 else 0.0,
        output=out_path,
        rejects=None if rejects is None else str(rejects),
        load_seconds=load_seconds,
    )


def _plan(
    files: list[Path],
    fmt: TableFormat,
    spec: Any,
    batch_rows: int,
    columns: Sequence[str] | None,
    id_column: str | None,
) -> ColumnPlan:
    """Plan against every file (header or Parquet schema only), so the file that does not fit is named."""
    plan: ColumnPlan | None = None
    for file in files:
        reader = fmt.open_reader(file, str(file), batch_rows)
        try:
            this = plan_columns(spec, reader, id_column=id_column, columns=None if columns is None else tuple(columns))
        finally:
            reader.close()
        if plan is not None and this.read_columns != plan.read_columns:
            raise InputSchemaError(
                f"{file} does not have the columns of {plan.source}; every input file must have the same columns."
            )
        plan = plan or this
    assert plan is not None
    if len(files) > 1:
        plan = replace(plan, source=f"{len(files)} files ({files[0]}, ...)")
    return plan


def _read(data: Any, files: list[Path], fmt: TableFormat, plan: ColumnPlan) -> Any:
    paths = [str(f) for f in files]
    if fmt.name == "parquet":
        # select_columns is pushed down into the read: only the planned columns are read from the files
        return data.read_parquet(paths, file_extensions=None).select_columns(list(plan.read_columns))
    import pyarrow.csv as pacsv

    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(plan.read_columns, pa.string()),
        include_columns=list(plan.read_columns),
        strings_can_be_null=True,
    )
    return data.read_csv(paths, convert_options=convert)


def _write(
    batches: Iterable[pa.Table],
    out_path: str,
    out_fmt: TableFormat,
    rejects: PathLike | None,
    rejects_fmt: TableFormat | None,
    plan: ColumnPlan,
    empty_output: Callable[[], pa.Table],
) -> tuple[int, int]:
    """Write scored batches in input order to ``out_path`` (and rejected rows, numbered in the whole input,
    to ``rejects``); return (rows read, rows rejected). Both files appear only once complete."""
    rows = rejected = 0
    empty: pa.Table | None = None
    wrote = False
    with ExitStack() as stack:
        writer = out_fmt.open_writer(stack.enter_context(AtomicOutput(out_path)), out_path)
        rejects_writer = None
        if rejects is not None and rejects_fmt is not None:
            sink = stack.enter_context(AtomicOutput(rejects))
            rejects_writer = RejectsWriter(rejects_fmt.open_writer(sink, str(rejects)))
        for table in batches:
            reasons = table.column(REASON)
            bad = np.asarray(reasons.is_valid(), dtype=bool)
            predictions = table.drop_columns([REASON, INPUT])
            if bad.any():
                positions = np.flatnonzero(bad)
                why = reasons.take(pa.array(positions)).to_pylist()
                if rejects_writer is None:
                    raise RejectedRowError(rows + int(positions[0]) + 1, str(why[0]), plan.source)
                values = table.column(INPUT).take(pa.array(positions)).to_pylist()
                rejects_writer.write(
                    [Reject(rows + int(p) + 1, str(r), str(v)) for p, r, v in zip(positions, why, values, strict=True)]
                )
                rejected += len(positions)
                predictions = predictions.filter(pa.array(~bad))
            rows += table.num_rows
            if predictions.num_rows:
                writer.write(predictions)
                wrote = True
            else:
                empty = predictions
        if not wrote:  # still a valid, empty file with the columns the model would give
            writer.write(empty if empty is not None else empty_output())
        writer.close()
        if rejects_writer is not None:
            rejects_writer.close()
    return rows, rejected


def _empty_batch(file: Path, fmt: TableFormat, plan: ColumnPlan) -> pa.Table:
    if fmt.name == "parquet":
        import pyarrow.parquet as pq

        return pq.read_schema(file).empty_table().select(list(plan.read_columns))
    return pa.table({c: pa.array([], pa.string()) for c in plan.read_columns})


def _unwrap(exc: BaseException) -> BaseException:
    """The error a worker raised, out of Ray's wrappers (a ``RayTaskError`` around it, a
    ``UserCodeException`` around that...), so callers see the same error types as the local path."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, CapsuleError | OSError):
            return current
        cause = getattr(current, "cause", None)
        current = cause if isinstance(cause, BaseException) else current.__cause__
    if _is_arrow_error(exc):
        return CapsuleFormatError(f"an input file could not be read: {str(exc).strip().splitlines()[-1]}")
    return exc


def _is_arrow_error(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    return "ArrowInvalid" in text or "ArrowTypeError" in text


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith((".", "_")) for part in path.relative_to(root).parts)


def _owned(path: Path, input_format: str | None) -> bool:
    try:
        fmt = format_for_path(str(path), input_format)
    except BatchUsageError:
        return False
    return fmt.name in RAY_FORMATS and (input_format is not None or path.suffix.lower() != ".json")
