"""The registry's records as plain, typed values: what every backend returns and the REST API serialises.

Each record has ``to_dict`` (the JSON shape the REST API sends) and ``from_dict`` (what the HTTP client
reads back), so the three backends hand callers identical objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["AliasEvent", "Delivery", "Model", "ModelVersion", "SearchPage", "TokenInfo", "Webhook"]

ROLES = ("read", "write", "admin")
"""Roles, weakest first: ``read`` reads; ``write`` registers and moves unprotected aliases; ``admin`` does the
rest (protected aliases, deletes, tokens, webhooks)."""


def role_at_least(have: str, needed: str) -> bool:
    """Whether role ``have`` includes everything role ``needed`` may do."""
    return ROLES.index(have) >= ROLES.index(needed)


@dataclass(frozen=True)
class ModelVersion:
    """One immutable, content-addressed version of a model."""

    name: str
    version: int
    digest: str
    size: int
    created_at: str
    created_by: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    parent: str | None = None
    trusted: list[str] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``name/version``: the reference other calls (``get``, ``parent=``) accept."""
        return f"{self.name}/{self.version}"

    @property
    def uri(self) -> str:
        """``models:/name/version``: what ``mc.load`` and every command taking a capsule path accept."""
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelVersion:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Model:
    """A registered name: its tags, description, aliases (alias → version) and latest version number."""

    name: str
    created_at: str
    created_by: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    protected: list[str] = field(default_factory=list)
    latest_version: int | None = None
    versions: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Model:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class AliasEvent:
    """Something that happened to a model: an alias move, rollback, protection, a registration, a deletion,
    a serving failure. Kept forever."""

    id: int
    at: str
    by: str
    kind: str
    name: str
    alias: str | None = None
    from_version: int | None = None
    to_version: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AliasEvent:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class SearchPage:
    """One page of search results, newest first; pass ``next_page_token`` back for the next page."""

    versions: list[ModelVersion]
    next_page_token: str | None = None

    def __iter__(self) -> Any:
        return iter(self.versions)

    def __len__(self) -> int:
        return len(self.versions)

    def to_dict(self) -> dict[str, Any]:
        return {"versions": [v.to_dict() for v in self.versions], "next_page_token": self.next_page_token}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchPage:
        return cls([ModelVersion.from_dict(v) for v in data["versions"]], data.get("next_page_token"))


@dataclass(frozen=True)
class TokenInfo:
    """A token as the registry keeps it: name, role and dates, never the secret itself."""

    name: str
    role: str
    created_at: str
    revoked_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Webhook:
    """A URL that receives a signed JSON POST for each event of the listed kinds (all when empty)."""

    id: int
    url: str
    events: list[str]
    created_at: str
    active: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver one event to one webhook."""

    id: int
    webhook_id: int
    event_id: int
    attempt: int
    at: str
    ok: bool
    status: int | None = None
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
