"""Who is acting: a name (recorded in every event) and a role (checked before every write)."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

from .errors import PermissionDeniedError
from .types import ROLES, role_at_least

__all__ = ["Actor", "local_actor"]


@dataclass(frozen=True)
class Actor:
    """The caller of a registry operation. In-process callers are admins under their login name; behind the
    REST server the actor is the token's name and role."""

    name: str
    role: str = "admin"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {self.role!r}")

    def require(self, needed: str, action: str) -> None:
        """Raise :class:`PermissionDeniedError` naming the role ``action`` needs, if this actor lacks it."""
        if not role_at_least(self.role, needed):
            raise PermissionDeniedError(action, needed, self.role)


def local_actor() -> Actor:
    """The user running this process (``$MODELCAPSULE_USER`` overrides the login name), as an admin."""
    name = os.environ.get("MODELCAPSULE_USER")
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = f"uid-{os.getuid()}"
    return Actor(name, "admin")
