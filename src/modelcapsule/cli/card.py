"""``capsule card PATH_OR_URI [-o README.md]``: the model card as Markdown, loading nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._common import EXIT_USAGE, emit_json, fail, json_option, reported_errors


def _registry_card(uri: str, registry: str | None) -> dict[str, Any]:
    """The card of a registry version: fetched (hash-checked) into the local cache, plus its registry record."""
    from ..ui.card import card_from_path

    try:
        from ..registry import Registry  # type: ignore[attr-defined]
    except ImportError as exc:
        fail(f"{uri} names a registry model, which needs the registry extra: "
             f"pip install 'modelcapsule[registry]' ({exc}).", EXIT_USAGE)
    reg = Registry(registry) if registry else Registry()
    ref = uri.removeprefix("models:/")
    version = reg.get(ref)
    record = {k: v for k, v in version.to_dict().items() if k not in ("manifest", "audit")}
    return card_from_path(reg.fetch(ref), registry=record)


@click.command()
@click.argument("target", metavar="PATH_OR_URI")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the card here (default: stdout).")
@click.option("--registry", envvar="MODELCAPSULE_REGISTRY", help="Registry for models:/ URIs.")
@json_option
def command(target: str, output: str | None, registry: str | None, as_json: bool) -> None:
    """Write the model card of PATH_OR_URI (a capsule, or models:/NAME@ALIAS, models:/NAME/VERSION) as
    Markdown with Hugging Face front matter. Reads the manifest and plain-data members; loads nothing."""
    from ..ui.card import card_from_path
    from ..ui.markdown import card_markdown

    with reported_errors():
        if target.startswith("models:/"):
            card = _registry_card(target, registry)
        else:
            if not Path(target).exists():
                fail(f"no capsule at {target}", EXIT_USAGE)
            card = card_from_path(target)
    if as_json:
        emit_json(card)
        return
    text = card_markdown(card)
    if output is None:
        click.echo(text, nl=False)
        return
    dest = Path(output)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(dest)
    click.echo(f"wrote the card of {card['name']} to {dest}", err=True)
