"""Opening the registry database: the engine (SQLite set up so writers queue instead of failing), and the
schema revision check that creates a fresh database at head and refuses an older one.

SQLite: WAL journal (readers never block the writer), ``busy_timeout`` so a writer waits for the lock, and
every write transaction starts with ``BEGIN IMMEDIATE`` so two writers never both read and then collide
on the upgrade to a write lock (the cause of "database is locked"). PostgreSQL: READ COMMITTED, writers
serialise on ``SELECT … FOR UPDATE`` of the model row (see :mod:`modelcapsule.registry.store`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from .errors import RegistryError, SchemaOutdatedError

__all__ = ["HEAD", "create_engine", "current_revision", "ensure_schema", "head_revision", "upgrade", "writing"]

MIGRATIONS = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_MS = 60_000


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url`` (``sqlite:///…`` or ``postgresql://…``; psycopg 3 is used for PostgreSQL)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_recycle=1800)  # no pre-ping: a round trip per call
    engine = sa.create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver's own BEGIN is replaced by ours below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if parsed.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        immediate = connection.get_execution_options().get("registry_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextmanager
def writing(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A write transaction: ``BEGIN IMMEDIATE`` on SQLite, a plain transaction elsewhere; committed on exit."""
    with engine.connect() as plain:
        connection = plain.execution_options(registry_write=True)
        with connection.begin():
            yield connection


def _alembic_config(connection: sa.Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    """The newest schema revision this modelcapsule knows."""
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)  # type: ignore[arg-type]
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise RegistryError("the registry's migrations have no head revision; the installation is broken.")
    return str(head)


HEAD = "0002"
"""The schema revision this release writes (a test keeps it equal to :func:`head_revision`)."""


def current_revision(engine: sa.Engine) -> str | None:
    """The database's schema revision, or None for a database never set up as a registry."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (``capsule registry upgrade``)."""
    from alembic import command

    with writing(engine) as connection:
        command.upgrade(_alembic_config(connection), revision)


def ensure_schema(engine: sa.Engine, location: str, *, create: bool = True) -> None:
    """Create an empty database at head; refuse one at another revision with the command that fixes it."""
    current = current_revision(engine)
    if current == HEAD:
        return
    if current is None:
        with engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
        if tables:
            raise RegistryError(f"the database at {location} already holds tables ({', '.join(sorted(tables)[:5])}) "
                                "but is not a modelcapsule registry; use an empty database.")
        if create:
            upgrade(engine)
            return
        raise RegistryError(f"there is no registry at {location}; create one with `capsule registry init`.")
    known = _known_revisions()
    if current not in known:
        raise RegistryError(f"the registry database at {location} is at schema revision {current}, newer than this "
                            f"modelcapsule knows ({HEAD}); upgrade modelcapsule.")
    raise SchemaOutdatedError(location, current, HEAD)


def _known_revisions() -> set[str]:
    return {path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("[0-9]*.py")}
