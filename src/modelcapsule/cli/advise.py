"""``capsule advise MODEL_FILE [--trust NAME]... [--sample FILE] [--format NAME]... [--json]``: measure
every format on a model and recommend one.

MODEL_FILE is anything ``capsule`` loads (a capsule, ``.pkl``, ``.joblib``, ``.skops``...), loaded
through the trust policy. Each format's load is timed in a fresh process. Exit codes: 0 done, 1 the file
needs untrusted names or cannot be loaded, 2 usage error.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

__all__ = ["command"]


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.0f} ms"


@click.command("advise")
@click.argument("model_file", type=click.Path(exists=True, dir_okay=True))
@click.option(
    "--trust",
    "trust",
    multiple=True,
    metavar="NAME",
    help="Exact module.qualname to trust beyond the defaults (repeatable).",
)
@click.option(
    "--sample",
    "sample",
    type=click.Path(exists=True, dir_okay=False),
    help="Rows to check the round trip on: .npy, .csv, .parquet or .json (default: the capsule's "
    "golden sample, or random rows for numeric models).",
)
@click.option(
    "--format",
    "formats",
    multiple=True,
    metavar="NAME",
    help="Only try these formats (repeatable): safepickle, skops, pickle, joblib, "
    "joblib-compressed, cloudpickle, onnx.",
)
@click.option(
    "--timeout", default=120.0, show_default=True, help="Seconds allowed for each fresh-process load."
)
@click.option("--json", "as_json", is_flag=True, help="Print the measurements as JSON.")
def command(
    model_file: str,
    trust: tuple[str, ...],
    sample: str | None,
    formats: tuple[str, ...],
    timeout: float,
    as_json: bool,
) -> None:
    """Try every format on MODEL_FILE: safe to load?, exact round trip?, size, save and load time."""
    from ..advise import CANDIDATES, advise
    from ..convert import _stored_sample, read_sample_file
    from ..errors import CapsuleError
    from ..load import load_capsule

    known = {name for _label, name in CANDIDATES}
    unknown = sorted(set(formats) - known)
    if unknown:
        raise click.UsageError(
            f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
    try:
        loaded = load_capsule(model_file, trusted=trust, verify=False, on_mismatch="ignore")
        rows: Any = (
            read_sample_file(sample)
            if sample
            else (_stored_sample(loaded.path) if loaded.manifest.files else None)
        )
    except ValueError as exc:
        if not isinstance(exc, CapsuleError):
            raise click.UsageError(str(exc)) from None
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    except CapsuleError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    with _progress(quiet=as_json) as report:
        advice = advise(
            loaded.model, rows, trusted=trust, formats=formats or None, timeout=timeout, progress=report
        )
    if as_json:
        click.echo(json.dumps(advice.to_dict(), indent=2))
        return
    _print(model_file, advice)


class _progress:
    """Rich progress on a terminal, plain lines on stderr otherwise (nothing with --json)."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if not self.quiet and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.__enter__()
        return self.report

    def report(self, label: str, done: int, total: int) -> None:
        if self.quiet:
            return
        if self._progress is None:
            if label != "done":
                click.echo(f"measuring {label} ({done + 1}/{total})...", err=True)
            return
        if self._task is None:
            self._task = self._progress.add_task("measuring", total=total)
        self._progress.update(self._task, completed=done, description=f"measuring {label}")

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)


def _print(model_file: str, advice: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    console.print(f"{model_file}: every format measured on {advice.sample_rows} sample rows", soft_wrap=True)
    table = Table()
    for column in (
        "format",
        "safe to load?",
        "exact round trip?",
        "size",
        "save",
        "load (fresh process)",
        "note",
    ):
        table.add_column(column)
    for t in advice.trials:
        exact = "-" if t.exact is None else ("[green]yes[/green]" if t.exact else "[red]no[/red]")
        safe = f"[green]{t.safety}[/green]" if t.safe else (f"[red]{t.safety}[/red]" if t.safety else "-")
        table.add_row(
            t.label,
            safe,
            exact,
            _size(t.size),
            _seconds(t.save_seconds),
            _seconds(t.load_seconds),
            t.error or t.detail,
        )
    console.print(table)
    console.print(advice.recommendation, soft_wrap=True)
