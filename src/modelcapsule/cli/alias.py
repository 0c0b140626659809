"""``capsule alias set|rollback|history|protect|delete NAME ALIAS``: move aliases and read their history."""

from __future__ import annotations

import click

from ._common import console, emit_json, json_option
from ._registry import open_registry, print_table, registry_errors, registry_options

_reason = click.option("--reason", default="", help="Why (recorded in the alias's history).")


@click.group()
def command() -> None:
    """Move aliases (champion, staging, ...) between versions; every move is recorded."""


def _report(event: object, as_json: bool) -> None:
    from ..registry.types import AliasEvent

    assert isinstance(event, AliasEvent)
    if as_json:
        emit_json(event.to_dict())
        return
    before = "(none)" if event.from_version is None else event.from_version
    after = "(none)" if event.to_version is None else event.to_version
    console().print(f"{event.name}@{event.alias}: {before} → {after}  [{event.kind}] by {event.by}"
                    + (f" — {event.reason}" if event.reason else ""))


@command.command("set")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=click.IntRange(1))
@_reason
@registry_options
@json_option
def set_alias(name: str, alias: str, version: int, reason: str, location: str | None, store: str | None,
              token: str | None, as_json: bool) -> None:
    """Point ALIAS of model NAME at VERSION."""
    with open_registry(location, store, token) as reg, registry_errors():
        _report(reg.set_alias(name, alias, version, reason=reason), as_json)


@command.command()
@click.argument("name")
@click.argument("alias")
@_reason
@registry_options
@json_option
def rollback(name: str, alias: str, reason: str, location: str | None, store: str | None, token: str | None,
             as_json: bool) -> None:
    """Move ALIAS back to the version it pointed to before."""
    with open_registry(location, store, token) as reg, registry_errors():
        _report(reg.rollback(name, alias, reason=reason), as_json)


@command.command()
@click.argument("name")
@click.argument("alias")
@click.option("--off", is_flag=True, help="Remove the protection instead.")
@_reason
@registry_options
@json_option
def protect(name: str, alias: str, off: bool, reason: str, location: str | None, store: str | None,
            token: str | None, as_json: bool) -> None:
    """Protect ALIAS: moving or deleting it then needs the admin role (admin only)."""
    with open_registry(location, store, token) as reg, registry_errors():
        _report(reg.protect(name, alias, protected=not off, reason=reason), as_json)


@command.command()
@click.argument("name")
@click.argument("alias")
@_reason
@registry_options
@json_option
def delete(name: str, alias: str, reason: str, location: str | None, store: str | None, token: str | None,
           as_json: bool) -> None:
    """Delete ALIAS (its history is kept)."""
    with open_registry(location, store, token) as reg, registry_errors():
        _report(reg.delete_alias(name, alias, reason=reason), as_json)


@command.command()
@click.argument("name")
@click.argument("alias", required=False)
@registry_options
@json_option
def history(name: str, alias: str | None, location: str | None, store: str | None, token: str | None,
            as_json: bool) -> None:
    """Every event of ALIAS (or of the whole model NAME), oldest first: when, who, from, to, why."""
    with open_registry(location, store, token) as reg, registry_errors():
        events = reg.history(name, alias)
    if as_json:
        emit_json({"events": [e.to_dict() for e in events]})
        return
    title = f"history of {name}{'@' + alias if alias else ''}"
    print_table(title, ["at", "by", "kind", "alias", "from", "to", "reason"],
                [(e.at, e.by, e.kind, e.alias or "", e.from_version, e.to_version, e.reason) for e in events])
