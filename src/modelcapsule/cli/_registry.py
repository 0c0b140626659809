"""What the registry subcommands share: choosing the registry (``--registry``/``--store``/``--token`` or
their environment variables), mapping registry errors to exit codes, and small table helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ._common import EXIT_CHECK_FAILED, EXIT_USAGE, console, fail

if TYPE_CHECKING:
    from ..registry import Registry

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["open_registry", "parse_tags", "print_table", "registry_errors", "registry_options"]


def registry_options(f: F) -> F:
    """``--registry``, ``--store`` and ``--token``, each with its environment variable."""
    f = click.option("--token", envvar="MODELCAPSULE_TOKEN", metavar="TOKEN",
                     help="Bearer token for an http(s):// registry [env MODELCAPSULE_TOKEN].")(f)
    f = click.option("--store", envvar="MODELCAPSULE_STORE", metavar="DIR",
                     help="Blob directory of a database-URL registry [env MODELCAPSULE_STORE].")(f)
    return click.option(  # type: ignore[return-value]
        "--registry", "location", envvar="MODELCAPSULE_REGISTRY", metavar="R",
        help="A directory (embedded), a database URL (sqlite:///…, postgresql://…) or an http(s):// registry "
             "[env MODELCAPSULE_REGISTRY; default ./modelcapsule-registry].")(f)


def open_registry(location: str | None, store: str | None, token: str | None, *, create: bool = False) -> Registry:
    from ..registry import Registry

    with registry_errors():
        return Registry(location, store=store, token=token, create=create)


@contextmanager
def registry_errors() -> Iterator[None]:
    """Registry errors as a message and an exit code: 2 for what the caller named wrong (an unknown model,
    a bad argument), 1 for everything the registry refused or found broken."""
    from ..errors import CapsuleError
    from ..registry.errors import AliasNotFoundError, ModelNotFoundError, VersionNotFoundError

    try:
        yield
    except (ModelNotFoundError, VersionNotFoundError, AliasNotFoundError) as exc:
        fail(str(exc), EXIT_USAGE)
    except CapsuleError as exc:
        fail(str(exc), EXIT_CHECK_FAILED)
    except (FileNotFoundError, FileExistsError) as exc:
        fail(str(exc), EXIT_USAGE)
    except PermissionError as exc:
        fail(str(exc), EXIT_CHECK_FAILED)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


def parse_tags(values: Sequence[str]) -> dict[str, str]:
    tags = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} must be KEY=VALUE", param_hint="--tag")
        tags[key] = value
    return tags


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title), title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:  # cells as Text: names, tags and reasons are user text, never rich markup
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    console().print(table)


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def format_tags(tags: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))


FETCHED: dict[str, str] = {}
"""Local path of each ``models:/`` argument fetched in this process → the model's name (``serve`` names the
model after it)."""


class CapsuleArgument(click.ParamType):  # type: ignore[type-arg]
    """A capsule path that must exist, or a ``models:/NAME@ALIAS`` / ``models:/NAME/VERSION`` URI, fetched
    (hash-checked) from the registry ``$MODELCAPSULE_REGISTRY`` names and replaced by its local path."""

    name = "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        if not text.startswith("models:/"):
            return click.Path(exists=True, dir_okay=True).convert(value, param, ctx)
        from ..core.uris import resolve_capsule_path
        from ..registry.refs import parse_ref

        with registry_errors():
            local = str(resolve_capsule_path(text))
            FETCHED[local] = parse_ref(text).name
        return local


CAPSULE_ARGUMENT = CapsuleArgument()


def served_name(paths: Sequence[Any]) -> str | None:
    """The model name to serve a single fetched ``models:/`` argument under (None otherwise)."""
    return FETCHED.get(str(paths[0])) if len(paths) == 1 else None
