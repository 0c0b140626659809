"""``capsule models [NAME]``: the registered models, or one model's versions and aliases."""

from __future__ import annotations

import click

from ._common import emit_json, json_option
from ._registry import format_tags, open_registry, parse_tags, print_table, registry_errors, registry_options, short


@click.command()
@click.argument("name", required=False)
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="Only versions carrying this tag (repeatable).")
@click.option("--max-results", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--page-token", help="Continue a search from the token the previous page printed.")
@registry_options
@json_option
def command(name: str | None, tags: tuple[str, ...], max_results: int, page_token: str | None, location: str | None,
            store: str | None, token: str | None, as_json: bool) -> None:
    """List models (NAME may be a glob such as 'fr*'); with a NAME, its versions; with --tag, matching versions."""
    parsed = parse_tags(tags)
    with open_registry(location, store, token) as reg, registry_errors():
        if parsed or page_token or (name and any(c in name for c in "*?")):
            page = reg.search(name=name, tags=parsed, max_results=max_results, page_token=page_token)
            if as_json:
                emit_json(page.to_dict())
                return
            print_table("versions", ["version", "digest", "created", "by", "aliases", "tags"], [
                (v.ref, short(v.digest), v.created_at, v.created_by, ", ".join(v.aliases), format_tags(v.tags))
                for v in page])
            if page.next_page_token:
                click.echo(f"more: --page-token {page.next_page_token}")
            return
        if name is None:
            models = reg.models()
            if as_json:
                emit_json({"models": [m.to_dict() for m in models]})
                return
            print_table("models", ["name", "latest", "versions", "aliases", "tags"], [
                (m.name, m.latest_version, m.versions,
                 ", ".join(f"{a}→{v}{' (protected)' if a in m.protected else ''}" for a, v in m.aliases.items()),
                 format_tags(m.tags)) for m in models])
            return
        model, versions = reg.model(name), reg.versions(name)
    if as_json:
        emit_json({"model": model.to_dict(), "versions": [v.to_dict() for v in versions]})
        return
    click.echo(f"{model.name}: created {model.created_at} by {model.created_by}"
               + (f"; tags {format_tags(model.tags)}" if model.tags else ""))
    print_table(f"versions of {name}", ["version", "digest", "size", "created", "by", "aliases", "parent", "tags"], [
        (v.version, short(v.digest), f"{v.size:,}", v.created_at, v.created_by, ", ".join(v.aliases), v.parent or "",
         format_tags(v.tags)) for v in versions])
