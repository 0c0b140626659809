"""``capsule predict``: score a CSV, Parquet, JSON Lines or NPY file with a capsule, in bounded memory."""

from __future__ import annotations

import json
import signal
import sys
from types import FrameType
from typing import Any

import click

from ..batch.api import DEFAULT_BATCH_ROWS
from ._registry import CAPSULE_ARGUMENT

__all__ = ["command"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3

_EPILOG = """\b
Exit codes:
  0  every row was scored
  1  a check failed: columns or dtypes do not fit the model, a corrupt input,
     a row failed validation (without --rejects), untrusted names, drift under
     --on-mismatch error, the golden sample differs, the model raised
  2  usage error: bad option, unknown format or method, missing file
  3  finished, but some rows went to the --rejects file
\b
Formats follow the file extension (.csv, .parquet/.pq, .jsonl/.ndjson/.json,
.npy; .csv.gz and .jsonl.gz are decompressed on the fly) unless --format /
--output-format name them. '-' reads standard input or writes standard output
for CSV and JSON Lines. OUTPUT defaults to INPUT.predictions.<ext> beside the
input; it appears only once complete (written to a temporary file, renamed).
"""


def _terminate(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into SystemExit so temporary output files are removed on the way out."""
    raise SystemExit(128 + signum)


@click.command(epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("path", type=CAPSULE_ARGUMENT)  # a path, or models:/NAME@ALIAS
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@click.option("-o", "--output", metavar="OUTPUT", help="Where predictions go ('-': standard output).")
@click.option(
    "--method",
    "methods",
    multiple=True,
    metavar="NAME",
    help="Output to compute: predict, predict_proba, ... (repeatable; default: the primary one).",
)
@click.option(
    "--batch-rows",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH_ROWS,
    show_default=True,
    help="Rows per chunk; memory use grows with it.",
)
@click.option(
    "--columns",
    metavar="A,B,...",
    help="Input columns to feed the model, comma-separated (in the model's order when the capsule "
    "records no column names); other columns are ignored.",
)
@click.option("--id-column", metavar="COL", help="Copy this input column to the output, first.")
@click.option("--format", "input_format", metavar="FMT", help="Input format: csv, parquet, jsonl or npy.")
@click.option("--output-format", metavar="FMT", help="Output format (default: by OUTPUT's extension).")
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write rows that fail validation here (row, reason, input) and go on; exit code 3.",
)
@click.option(
    "--trust",
    "trusted",
    multiple=True,
    metavar="NAME",
    help="Extra module.qualname the loader may import (repeatable), as in `load`.",
)
@click.option("--trust-code", is_flag=True, help="Allow formats whose loading runs code (cloudpickle).")
@click.option(
    "--on-mismatch",
    type=click.Choice(["warn", "error", "ignore"]),
    default="warn",
    show_default=True,
    help="What to do when the environment differs from the saved one.",
)
@click.option("--no-verify", is_flag=True, help="Skip re-checking the golden sample on load.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on standard error (default: when it is a terminal).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (on standard error).")
@click.option(
    "--ray",
    "on_ray",
    is_flag=True,
    help="Score on Ray Data: CSV/Parquet files or folders, one loaded model per actor, one OUTPUT file "
    "(a local cluster for this command, or the one $RAY_ADDRESS names).",
)
def command(
    *,
    path: str,
    inputs: tuple[str, ...],
    output: str | None,
    methods: tuple[str, ...],
    batch_rows: int,
    columns: str | None,
    id_column: str | None,
    input_format: str | None,
    output_format: str | None,
    rejects: str | None,
    trusted: tuple[str, ...],
    trust_code: bool,
    on_mismatch: Any,
    no_verify: bool,
    progress: bool | None,
    quiet: bool,
    as_json: bool,
    on_ray: bool,
) -> None:
    """Score INPUT with the capsule at PATH, streaming it in chunks so files larger than memory fit.
    With --ray, INPUT may be several files or folders of CSV or Parquet."""
    from ..batch.api import predict_file
    from ..batch.errors import BatchUsageError
    from ..errors import CapsuleError

    show_progress = (sys.stderr.isatty() if progress is None else progress) and not quiet
    if len(inputs) > 1 and not on_ray:
        click.echo("error: several inputs are scored with --ray only; give one INPUT.", err=True)
        sys.exit(EXIT_USAGE)
    common: dict[str, Any] = {
        "method": list(methods) or None,
        "batch_rows": batch_rows,
        "columns": [c.strip() for c in columns.split(",") if c.strip()] if columns else None,
        "id_column": id_column,
        "rejects": rejects,
        "input_format": input_format,
        "output_format": output_format,
        "trusted": trusted,
        "on_mismatch": on_mismatch,
        "verify": not no_verify,
        "trust_code": trust_code,
        "progress": show_progress,
    }
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if on_ray:
            summary = _predict_on_ray(path, inputs, output, **common)
        else:
            summary = predict_file(path, inputs[0], output, **common)
    except (BatchUsageError, FileNotFoundError, IsADirectoryError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except CapsuleError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not quiet:
        if as_json:
            data = {
                "rows": summary.rows,
                "scored": summary.scored,
                "rejected": summary.rejected,
                "seconds": round(summary.seconds, 6),
                "rows_per_second": round(summary.rows_per_second, 1),
                "output": summary.output,
                "rejects": summary.rejects,
            }
            click.echo(json.dumps(data), err=True)
        else:
            where = "standard output" if summary.output == "-" else summary.output
            note = f", {summary.rejected:,} rejected → {summary.rejects}" if summary.rejected else ""
            click.echo(
                f"scored {summary.scored:,} of {summary.rows:,} rows{note} in {summary.seconds:.2f} s "
                f"({summary.rows_per_second:,.0f} rows/s) → {where}",
                err=True,
            )
    sys.exit(EXIT_REJECTED if summary.rejected else EXIT_OK)


def _predict_on_ray(path: str, inputs: tuple[str, ...], output: str | None, **kwargs: Any) -> Any:
    """``capsule predict --ray`` (modelcapsule.integrations.ray), on the cluster $RAY_ADDRESS names or a
    local one started for this command."""
    import os

    from ..batch.errors import BatchUsageError

    if output is None:
        raise BatchUsageError("--ray writes one output file; give -o OUTPUT.")
    try:
        from ..integrations.ray import predict_dataset
    except ImportError as exc:
        raise BatchUsageError(f"--ray needs Ray Data: pip install 'modelcapsule[ray]' ({exc}).") from None
    return predict_dataset(path, list(inputs), output, address=os.environ.get("RAY_ADDRESS") or None, **kwargs)
