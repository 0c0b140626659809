"""``capsule alias set|rollback|history|protect|delete NAME ALIAS``: move aliases and read their history."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ._common import console, emit_json, json_option
from ._registry import open_registry, print_table, registry_errors, registry_options

if TYPE_CHECKING:
    from ..registry.types import AliasEvent

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
    # markup off: the reason and the actor's name are user text, never rich markup
    console().print(f"{event.name}@{event.alias}: {before} → {after}  [{event.kind}] by {event.by}"
                    + (f" — {event.reason}" if event.reason else ""), markup=False)


# The four moves differ only in their extra parameter and the registry call; each row is
# (subcommand, help, extra argument or option, call(registry, name, alias, reason, **extra)).
_MOVES: tuple[tuple[str, str, Callable[[Any], Any] | None, Callable[..., AliasEvent]], ...] = (
    ("set", "Point ALIAS of model NAME at VERSION.",
     click.argument("version", type=click.IntRange(1)),
     lambda reg, name, alias, reason, version: reg.set_alias(name, alias, version, reason=reason)),
    ("rollback", "Move ALIAS back to the version it pointed to before.",
     None,
     lambda reg, name, alias, reason: reg.rollback(name, alias, reason=reason)),
    ("protect", "Protect ALIAS: moving or deleting it then needs the admin role (admin only).",
     click.option("--off", is_flag=True, help="Remove the protection instead."),
     lambda reg, name, alias, reason, off: reg.protect(name, alias, protected=not off, reason=reason)),
    ("delete", "Delete ALIAS (its history is kept).",
     None,
     lambda reg, name, alias, reason: reg.delete_alias(name, alias, reason=reason)),
)


def _move_command(help: str, extra: Callable[[Any], Any] | None, call: Callable[..., AliasEvent]) -> click.Command:
    """One move subcommand: NAME ALIAS [extra] --reason, the registry options and --json; prints the event."""

    def move(name: str, alias: str, reason: str, location: str | None, store: str | None, token: str | None,
             as_json: bool, **extra_value: Any) -> None:
        with open_registry(location, store, token) as reg, registry_errors():
            _report(call(reg, name, alias, reason, **extra_value), as_json)

    f: Callable[..., None] = _reason(registry_options(json_option(move)))  # innermost last on --help
    if extra is not None:
        f = extra(f)
    return click.command(help=help)(click.argument("name")(click.argument("alias")(f)))


for _name, _help, _extra, _call in _MOVES:
    command.add_command(_move_command(_help, _extra, _call), _name)


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
