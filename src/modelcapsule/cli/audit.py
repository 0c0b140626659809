"""``capsule audit PATH [--trust NAME]... [--json]``: what a file would import, without importing it.

Exit codes: 0 every name is trusted, 1 untrusted names (or code-running format, corrupt file, hash
mismatch) were found, 2 usage error.
"""

from __future__ import annotations

import json

import click

__all__ = ["command"]


@click.command("audit")
@click.argument("path", type=click.Path(exists=True, dir_okay=True))
@click.option("--trust", "trust", multiple=True, metavar="NAME",
              help="Exact module.qualname to trust beyond the defaults (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def command(path: str, trust: tuple[str, ...], as_json: bool) -> None:
    """List every name PATH would import (capsule, .pkl, .joblib, .skops, ...) and which are untrusted.

    Nothing in the file is imported or run.
    """
    from ..audit import audit

    try:
        report = audit(path, trusted=trust)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except (OSError, TypeError) as exc:
        raise click.UsageError(f"{type(exc).__name__}: {exc}") from None
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print(report)
    raise SystemExit(0 if report.ok else 1)


def _print(report: object) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..audit import AuditReport

    assert isinstance(report, AuditReport)
    console = Console(highlight=False)
    console.print(f"[bold]{escape(str(report.path))}[/bold]: {report.kind}, format [bold]{report.format}[/bold]")
    if report.manifest:
        m = report.manifest
        console.print(escape(f"model {m.get('class')} ({m.get('framework')}), saved {m.get('created_at')}, "
                             f"format chosen by {m.get('chosen_by') or 'unknown'}"))
        for name, reason in (m.get("passed_over") or {}).items():
            console.print(escape(f"  passed over {name}: {reason}"))
        console.print(f"hashes: {report.hashes}")
    table = Table(title=f"{len(report.globals)} name(s) the file would import")
    table.add_column("name")
    table.add_column("status")
    for name in report.globals:
        bad = name in report.untrusted
        table.add_row(escape(name), "[red]UNTRUSTED[/red]" if bad else "[green]trusted[/green]")
    console.print(table)
    for problem in report.problems:
        console.print(f"[red]problem:[/red] {escape(problem)}")
    if report.runs_code:
        console.print(f"[red]The {report.format} format runs code stored in the file when loaded; no list "
                      "of names makes that safe. Load it only with trust_code=True if you trust its "
                      "source.[/red]")
    if report.untrusted:
        console.print(f"[yellow]{len(report.untrusted)} untrusted name(s).[/yellow] Review them; if you "
                      "trust the file, load with:")
        console.print(f"  modelcapsule.load(..., {report.trusted_arg})", soft_wrap=True, markup=False)
        console.print(f"  {report.trust_flags}", soft_wrap=True, markup=False)
    elif report.ok:
        console.print("[green]Every name is trusted by the current policy.[/green]")
