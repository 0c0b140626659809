"""``capsule register PATH NAME``: check a capsule with every load check and store it as the next version."""

from __future__ import annotations

import click

from ._common import console, emit_json, json_option
from ._registry import format_tags, open_registry, parse_tags, registry_errors, registry_options, short


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=True))
@click.argument("name")
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="Tag the version (repeatable).")
@click.option("--alias", metavar="ALIAS", help="Point this alias at the new version.")
@click.option("--trust", "trusted", multiple=True, metavar="NAME",
              help="Admit this exact module.qualname for the registration check (recorded; repeatable).")
@click.option("--description", default="", help="What this version is.")
@click.option("--parent", metavar="REF", help="The version this one derives from (NAME/N or NAME@ALIAS).")
@registry_options
@json_option
def command(path: str, name: str, tags: tuple[str, ...], alias: str | None, trusted: tuple[str, ...], description: str,
            parent: str | None, location: str | None, store: str | None, token: str | None, as_json: bool) -> None:
    """Register the capsule at PATH as the next version of model NAME (same bytes: the existing version)."""
    parsed = parse_tags(tags)
    with open_registry(location, store, token, create=True) as reg, registry_errors():
        version = reg.register(name, path, tags=parsed, description=description, alias=alias, trusted=trusted,
                               parent=parent)
    if as_json:
        emit_json(version.to_dict())
        return
    out = console()
    out.print(f"[green]registered[/green] {version.ref}  sha256:{short(version.digest)}…  "
              f"{version.size:,} bytes  by {version.created_by}")
    if version.aliases:
        out.print(f"aliases: {', '.join(version.aliases)}", markup=False)
    if version.tags:
        out.print(f"tags: {format_tags(version.tags)}", markup=False)
    if version.trusted:
        out.print(f"trusted for this check (recorded, not granted to loaders): {', '.join(version.trusted)}",
                  markup=False)
    out.print(f"load it with: mc.load(\"{version.uri}\")", markup=False)
