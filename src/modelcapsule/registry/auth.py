"""Access tokens: random secrets shown once at creation, stored only as their SHA-256, each with a name
(recorded as the actor in every event it causes) and a role (``read``, ``write``, ``admin``)."""

from __future__ import annotations

import hashlib
import secrets

import sqlalchemy as sa

from . import schema as t
from .actors import Actor
from .database import writing
from .errors import ConflictError, RegistryError
from .refs import check_name
from .store import now
from .types import ROLES, TokenInfo

__all__ = ["TOKEN_PREFIX", "authenticate", "create_token", "list_tokens", "revoke_token"]

TOKEN_PREFIX = "mcr_"  # noqa: S105 (a prefix that makes leaked tokens greppable, not a secret)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(engine: sa.Engine, actor: Actor, name: str, role: str) -> str:
    """Create a token and return its secret: the only time it is ever shown."""
    actor.require("admin", "creating tokens")
    check_name(name, "token name")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with writing(engine) as connection:
        if connection.execute(sa.select(t.tokens.c.id).where(t.tokens.c.name == name)).first() is not None:
            raise ConflictError(f"a token named {name!r} exists; revoke it first or pick another name")
        connection.execute(sa.insert(t.tokens).values(name=name, role=role, sha256=_digest(secret),
                                                      created_at=now(), revoked_at=None))
    return secret


def revoke_token(engine: sa.Engine, actor: Actor, name: str) -> None:
    actor.require("admin", "revoking tokens")
    with writing(engine) as connection:
        done = connection.execute(sa.update(t.tokens).where(t.tokens.c.name == name, t.tokens.c.revoked_at.is_(None))
                                  .values(revoked_at=now())).rowcount
    if not done:
        raise RegistryError(f"no active token named {name!r}; `capsule registry token list` shows them")


def list_tokens(engine: sa.Engine, actor: Actor) -> list[TokenInfo]:
    actor.require("admin", "listing tokens")
    with engine.connect() as connection:
        return [TokenInfo(r.name, r.role, r.created_at, r.revoked_at)
                for r in connection.execute(sa.select(t.tokens).order_by(t.tokens.c.name))]


def authenticate(engine: sa.Engine, secret: str) -> Actor | None:
    """The actor a live token stands for, or None (unknown or revoked). Compared by hash, in the database."""
    with engine.connect() as connection:
        row = connection.execute(sa.select(t.tokens.c.name, t.tokens.c.role)
                                 .where(t.tokens.c.sha256 == _digest(secret), t.tokens.c.revoked_at.is_(None))).first()
    return None if row is None else Actor(row.name, row.role)
