"""Hearing of registry changes as they commit: PostgreSQL ``LISTEN`` on the channel every event is announced on.

A server that follows registry models polls; on PostgreSQL it also listens, so an alias move reaches it
within milliseconds of the commit instead of at the next poll. SQLite and HTTP registries have no such
channel: :func:`listen` returns None and polling alone applies. The listener runs on a daemon thread
with its own connection, reconnects (with a pause) after errors, and never raises into the caller.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .store import CHANGES_CHANNEL

__all__ = ["listen"]

log = logging.getLogger("modelcapsule.registry")
RECONNECT_SECONDS = 5.0


def listen(location: str, on_change: Callable[[str], None]) -> Callable[[], None] | None:
    """Call ``on_change(model_name)`` for every event committed to the PostgreSQL registry at ``location``.

    Returns a function that stops listening, or None when ``location`` is not a PostgreSQL database."""
    if not location.startswith(("postgresql://", "postgresql+psycopg://")):
        return None
    dsn = "postgresql://" + location.split("://", 1)[1]
    stopped = threading.Event()
    thread = threading.Thread(target=_run, args=(dsn, on_change, stopped), name="registry-listen", daemon=True)
    thread.start()
    return stopped.set


def _run(dsn: str, on_change: Callable[[str], None], stopped: threading.Event) -> None:
    import psycopg

    while not stopped.is_set():
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as connection:
                connection.execute(f"LISTEN {CHANGES_CHANNEL}")
                while not stopped.is_set():
                    for notice in connection.notifies(timeout=1.0):
                        on_change(notice.payload)
        except psycopg.Error as exc:
            log.warning("listening for registry changes failed (%s); polling alone until it reconnects", exc)
            stopped.wait(RECONNECT_SECONDS)
