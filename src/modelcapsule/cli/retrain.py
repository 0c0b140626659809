"""``capsule retrain PATH``: re-run a capsule's training script and compare the new model with the old.

Exit code 0 only when every saved metric of the re-trained model is within its saved range, 1 when one
is not (or the script fails), 2 for usage errors.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ._common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    emit_json,
    fail,
    json_option,
    reported_errors,
    trust_option,
)

if TYPE_CHECKING:
    from rich.console import Console

    from ..reproduce.compare import RetrainReport

__all__ = ["command"]


@contextlib.contextmanager
def _progress(enabled: bool, label: str) -> Iterator[Callable[[str], None] | None]:
    """On a terminal, a spinner that shows the script's latest output line; nothing otherwise."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True)
    with console.status(f"Re-training: running {escape(label)}") as status:
        def show(line: str) -> None:
            if line.strip():
                status.update(f"Re-training: running {escape(label)}  [dim]{escape(line.strip()[:60])}[/]")

        yield show


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def render_report(report: RetrainReport, console: Console) -> None:
    """Print ``report`` as tables: versions, training data, metrics with verdicts, agreement, conclusion."""
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]{escape(report.name)}[/]: re-trained with {escape(report.script)} in "
                  f"{report.seconds:.1f} s → {escape(report.new)}")
    versions = Table(title="Library versions", title_justify="left")
    for col in ("package", "then", "now", ""):
        versions.add_column(col)
    versions.add_row("python", report.python[0] or "—", report.python[1] or "—",
                     "" if report.python[0] == report.python[1] else "[yellow]changed[/]")
    for p in report.packages:
        versions.add_row(escape(p.name), escape(p.then or "—"), escape(p.now or "—"),
                         "[yellow]changed[/]" if p.changed else "")
    console.print(versions)
    same = report.data.same
    data = {True: "[green]same fingerprint[/]", False: "[red]different fingerprint[/]",
            None: "[yellow]unknown (not recorded in both capsules)[/]"}[same]
    console.print(f"Training data: {data}  (then {report.data.then_shape[0]}×{report.data.then_shape[1]}, "
                  f"now {report.data.now_shape[0]}×{report.data.now_shape[1]})")
    metrics = Table(title=f"Metrics (saved range = mean ± {report.tolerance:g}·std of the saved folds)",
                    title_justify="left")
    for col in ("metric", "then", "saved range", "now", "verdict"):
        metrics.add_column(col)
    for m in report.metrics:
        then = "—" if not m.then else f"{_fmt(m.then_mean)} ± {_fmt(m.then_std)} ({len(m.then)})"
        rng = "—" if m.low is None else f"[{_fmt(m.low)}, {_fmt(m.high)}]"
        now = "—" if not m.now else f"{_fmt(m.now_mean)} ({len(m.now)})"
        verdict = {"within": "[green]within[/]", "outside": "[red]outside[/]",
                   "missing": "[red]not recorded now[/]"}.get(m.verdict, f"[dim]{m.verdict}, not judged[/]")
        metrics.add_row(escape(m.name), then, rng, now, verdict)
    console.print(metrics)
    for a in report.agreement:
        console.print(f"Golden sample, {a.method}(): {a.equal}/{a.rows} rows equal ({a.fraction:.0%})")
    for note in report.notes:
        console.print(f"[dim]note: {escape(note)}[/]")
    if report.within_range:
        console.print("[bold green]Within the saved range.[/]")
    elif not any(m.judged for m in report.metrics):
        console.print("[bold red]Not checked:[/] the original capsule records no numeric metrics; save it "
                      "with metrics={...} (e.g. cross-validation scores).")
    else:
        console.print("[bold red]Out of the saved range.[/]")


@click.command("retrain")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--script", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Training script to run instead of the one stored in the capsule.")
@click.option("-o", "--output", "new", type=click.Path(path_type=Path),
              help="Where the re-trained capsule goes (default: NAME.retrained.capsule beside PATH).")
@click.option("--tolerance", type=click.FloatRange(min=0), default=2.0, show_default=True, metavar="K",
              help="A metric is within range when it lies in mean ± K·std of the saved fold scores.")
@click.option("--trust-script", is_flag=True,
              help="Run the training script stored in the capsule (it is Python code from the capsule's author: "
                   "read it first with --show-script).")
@click.option("--show-script", is_flag=True, help="Print the stored training script and exit; nothing runs.")
@click.option("--overwrite", is_flag=True, help="Replace the output capsule if it exists.")
@trust_option
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop the script after this long.")
@json_option
def command(*, path: Path, script: Path | None, new: Path | None, tolerance: float, trust_script: bool,
            show_script: bool, overwrite: bool, trusted: tuple[str, ...], timeout: float | None,
            as_json: bool) -> None:
    """Re-run the training script of the capsule at PATH and compare the new model with the saved one.

    The script runs in the current environment, in the current directory; its own modelcapsule.save(...)
    call is redirected to the output path. The stored script runs only with --trust-script (review it
    with --show-script), or pass your own with --script. The report shows library versions then and now, whether the
    training data is the same, each metric against its saved range, and golden-sample agreement.
    """
    from rich.console import Console

    from ..reproduce.retrain import retrain, stored_script

    if show_script:
        with reported_errors():
            _name, text = stored_script(path)
        click.echo(text, nl=not text.endswith("\n"))
        return
    label = script.name if script else "the stored training script"
    try:
        with reported_errors(), _progress(sys.stderr.isatty() and not as_json, label) as on_line:
            report = retrain(path, new, script=script, tolerance=tolerance, overwrite=overwrite,
                             trusted=trusted, trust_script=trust_script, timeout=timeout, on_line=on_line)
    except ValueError as exc:  # not a CapsuleError (those exit 1 above): a bad argument
        fail(str(exc), EXIT_USAGE)
    if as_json:
        emit_json(report.to_dict())
    else:
        render_report(report, Console(width=None if sys.stdout.isatty() else 120, highlight=False))
    sys.exit(EXIT_OK if report.within_range else EXIT_CHECK_FAILED)
