"""``capsule env PATH``: print, write or re-create the pinned environment a capsule was saved in."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from ._common import emit_json, json_option, reported_errors

__all__ = ["command"]

FORMATS = ("requirements", "pylock", "conda")


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str], None]]:
    """A callback that shows each step under a spinner on a terminal, and does nothing otherwise."""
    if not enabled:
        yield lambda _msg: None
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("starting") as status:
        yield status.update


@click.command("env")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="requirements", show_default=True,
              help="requirements.txt, a PEP 751 pylock.toml, or a conda environment.yml.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the file here instead of printing it.")
@click.option("--venv", "venv_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Create a virtual environment in DIR with exactly these versions, then load and "
                   "verify the capsule inside it.")
@click.option("--python", "python", default=sys.executable, show_default="this interpreter",
              help="Interpreter that creates the --venv (match the capsule's Python version).")
@click.option("--modelcapsule", "tool_spec", metavar="SPEC",
              help="How to install modelcapsule into the --venv: a requirement, a wheel or a source "
                   "directory (default: this checkout, or this released version).")
@json_option
def command(*, path: Path, fmt: str, output: Path | None, venv_dir: Path | None, python: str,
            tool_spec: str | None, as_json: bool) -> None:
    """Print the pinned environment of the capsule at PATH, or re-create it with --venv."""
    from ..core.container import open_capsule
    from ..reproduce.lockfiles import lock_input, render
    from ..reproduce.venv import build_venv

    with reported_errors():
        with open_capsule(path) as reader:
            manifest = reader.manifest
        lock = lock_input(manifest.name, manifest.environment)
    text = render(lock, fmt)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output} ({len(lock.pins)} pinned packages)", err=True)
    elif venv_dir is None and as_json:
        info = lock.info
        emit_json({"name": lock.name, "python": info.python, "implementation": info.implementation,
                   "platform": info.platform, "machine": info.machine,
                   "requirements": [str(p) for p in lock.pins]})
    elif venv_dir is None:
        click.echo(text, nl=False)
    if venv_dir is None:
        return
    with reported_errors(), _progress(sys.stderr.isatty() and not as_json) as progress:
        report = build_venv(path, venv_dir, lock.pins, python=python, tool_spec=tool_spec,
                            saved_python=lock.info.python, progress=progress)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        emit_json({
            "venv": str(report.path), "python": str(report.python), "seconds": round(report.seconds, 2),
            "versions": report.versions, "modelcapsule": report.modelcapsule, "model": report.model,
            "verified": True, "warnings": report.warnings,
        })
        return
    activate = report.path / ("Scripts" if sys.platform == "win32" else "bin") / "activate"
    click.echo(
        f"Created {report.path} with {len(report.pins)} pinned packages in {report.seconds:.1f} s.\n"
        f"The capsule loads there with no version drift and reproduces its golden sample ({report.model}).\n"
        f"Activate it with: source {activate}"
    )
