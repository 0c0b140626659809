"""What every subcommand shares: the console, JSON output, and the mapping of errors to exit codes.

Errors are typed in the core; only here do they become exit codes: 1 when a check failed (untrusted
names, integrity, drift under "error", verification), 2 for usage errors (bad arguments, missing files).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click

from ..errors import CapsuleError

__all__ = ["EXIT_CHECK_FAILED", "EXIT_OK", "EXIT_USAGE", "console", "emit_json", "fail", "json_option",
           "reported_errors", "trust_option"]

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2

F = TypeVar("F", bound=Callable[..., Any])


def console(stderr: bool = False) -> Any:
    """A rich console (imported lazily: rich is only needed when something is printed)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def fail(message: str, code: int = EXIT_CHECK_FAILED) -> NoReturn:
    """Print ``message`` to stderr and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn the core's typed errors into a clear message and the right exit code."""
    try:
        yield
    except CapsuleError as exc:
        fail(str(exc), EXIT_CHECK_FAILED)
    except FileNotFoundError as exc:
        fail(str(exc), EXIT_USAGE)
    except FileExistsError as exc:
        fail(str(exc), EXIT_USAGE)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(f)  # type: ignore[return-value]


def trust_option(f: F) -> F:
    return click.option(  # type: ignore[return-value]
        "--trust", "trusted", multiple=True, metavar="NAME",
        help="Exact module.qualname the loader may import, beyond the defaults (repeatable).",
    )(f)
