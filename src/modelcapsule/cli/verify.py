"""``capsule verify PATH``: hashes, signature, environment drift and golden sample, reported."""

from __future__ import annotations

import click

from ._common import EXIT_CHECK_FAILED, console, emit_json, json_option, trust_option
from ._registry import CAPSULE_ARGUMENT


@click.command()
@click.argument("path", type=CAPSULE_ARGUMENT)  # a path, or models:/NAME@ALIAS
@click.option("--public-key", type=click.Path(exists=True, dir_okay=False),
              help="Require a valid signature made with the matching private key.")
@trust_option
@json_option
def command(path: str, public_key: str | None, trusted: tuple[str, ...], as_json: bool) -> None:
    """Check the capsule at PATH and exit 1 if any check fails (drift alone is reported, not failed)."""
    from ..verify import verify

    try:
        report = verify(path, trusted=trusted, public_key=public_key)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if as_json:
        emit_json(report.to_dict())
    else:
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=f"verify {path}", title_justify="left")
        table.add_column("check")
        table.add_column("result")
        table.add_row("hashes", report.hashes)
        table.add_row("signature", report.signature)
        table.add_row("environment", "same as saved" if not report.drift else
                      escape("\n".join(f"{d.name}: {d.saved} → {d.installed}" for d in report.drift)))
        for method, result in report.sample.items():
            table.add_row(f"golden sample {method}", result)
        if report.stored_trees != "absent":
            table.add_row("stored flat trees", escape(report.stored_trees))
        out = console()
        out.print(table)
        for problem in report.problems:
            out.print(f"[red]✗[/red] {escape(problem)}")
        out.print("[green]OK[/green]" if report.ok else "[red]FAILED[/red]")
    if not report.ok:
        raise SystemExit(EXIT_CHECK_FAILED)
