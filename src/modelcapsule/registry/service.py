"""``mc.Registry``: one Python API over three backends.

>>> reg = mc.Registry()                                            # doctest: +SKIP
>>> v = reg.register("fraud", "model.capsule", alias="staging")     # doctest: +SKIP
>>> reg.set_alias("fraud", "champion", v.version, reason="AUC +0.02")  # doctest: +SKIP

- a directory (the default: ``$MODELCAPSULE_REGISTRY``, else ``./modelcapsule-registry/``): embedded,
  ``registry.db`` (SQLite) and ``blobs/`` inside it;
- a database URL (``sqlite:///…``, ``postgresql://…``) with ``store=`` (or ``$MODELCAPSULE_STORE``) naming
  the blob directory;
- an ``http(s)://`` URL of ``capsule registry serve``, with ``token=`` (or ``$MODELCAPSULE_TOKEN``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from .actors import Actor
from .types import AliasEvent, Delivery, Model, ModelVersion, SearchPage, TokenInfo, Webhook

__all__ = ["DEFAULT_DIRECTORY", "Backend", "Registry", "resolve_location"]

DEFAULT_DIRECTORY = "modelcapsule-registry"


class Backend(Protocol):
    """What each backend implements; :class:`Registry` forwards to it."""

    def register(self, name: str, path: str | os.PathLike[str], *, tags: Mapping[str, str] | None = None,
                 description: str = "", alias: str | None = None, trusted: Iterable[str] = (),
                 parent: str | None = None, model_tags: Mapping[str, str] | None = None) -> ModelVersion: ...
    def get(self, ref: str) -> ModelVersion: ...
    def model(self, name: str) -> Model: ...
    def models(self, pattern: str | None = None) -> list[Model]: ...
    def versions(self, name: str) -> list[ModelVersion]: ...
    def search(self, *, name: str | None = None, tags: Mapping[str, str] | None = None, max_results: int = 100,
               page_token: str | None = None) -> SearchPage: ...
    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]: ...
    def fetch(self, ref: str) -> Path: ...
    def set_alias(self, name: str, alias: str, version: int, *, reason: str = "") -> AliasEvent: ...
    def rollback(self, name: str, alias: str, *, reason: str = "") -> AliasEvent: ...
    def delete_alias(self, name: str, alias: str, *, reason: str = "") -> AliasEvent: ...
    def protect(self, name: str, alias: str, *, protected: bool = True, reason: str = "") -> AliasEvent: ...
    def delete(self, name: str, version: int, *, reason: str = "") -> AliasEvent: ...
    def set_tags(self, name: str, tags: Mapping[str, str], *, version: int | None = None) -> None: ...
    def delete_tag(self, name: str, key: str, *, version: int | None = None) -> None: ...
    def record_event(self, name: str, kind: str, *, alias: str | None = None, from_version: int | None = None,
                     to_version: int | None = None, reason: str = "") -> AliasEvent: ...
    def create_token(self, name: str, role: str) -> str: ...
    def revoke_token(self, name: str) -> None: ...
    def tokens(self) -> list[TokenInfo]: ...
    def add_webhook(self, url: str, secret: str, events: list[str] | None = None) -> Webhook: ...
    def webhooks(self) -> list[Webhook]: ...
    def remove_webhook(self, hook_id: int) -> None: ...
    def deliveries(self, hook_id: int | None = None, limit: int = 100) -> list[Delivery]: ...
    def close(self) -> None: ...


def resolve_location(location: str | os.PathLike[str] | None, store: str | os.PathLike[str] | None) -> tuple[
        str, str | None]:
    """``(database URL or http URL, blob directory or None)`` for a registry location as users write it."""
    text = os.fspath(location) if location is not None else os.environ.get("MODELCAPSULE_REGISTRY") or DEFAULT_DIRECTORY
    if text.startswith(("http://", "https://")):
        return text.rstrip("/"), None
    blob_dir = os.fspath(store) if store is not None else os.environ.get("MODELCAPSULE_STORE")
    if "://" in text:
        if text.startswith("sqlite:///") and blob_dir is None:
            database = text[len("sqlite:///"):]
            blob_dir = str(Path(database).resolve().parent / "blobs")
        if blob_dir is None:
            raise ValueError(f"a registry on {text.split('://')[0]} needs a blob directory: pass store=DIR "
                             "(--store DIR) or set $MODELCAPSULE_STORE")
        return text, blob_dir
    directory = Path(text).resolve()
    return f"sqlite:///{directory / 'registry.db'}", blob_dir or str(directory / "blobs")


class Registry:
    """A model registry: names, immutable content-addressed versions, aliases with their full history,
    tags, search, tokens and webhooks. See the module docstring for the three kinds of ``location``.

    ``trusted``: names this registry's registration checks admit beyond the defaults (the registry's
    trust policy; embedded and database backends). ``create``: set up a missing registry at the current
    schema (an existing one at an older schema is refused with the ``capsule registry upgrade`` command).
    """

    def __init__(self, location: str | os.PathLike[str] | None = None, *, store: str | os.PathLike[str] | None = None,
                 token: str | None = None, trusted: Iterable[str] = (), create: bool = True,
                 actor: Actor | None = None) -> None:
        url, blob_dir = resolve_location(location, store)
        self.location = url
        self._backend: Backend
        if blob_dir is None:
            from .client import HttpRegistry

            self._backend = HttpRegistry(url, token=token or os.environ.get("MODELCAPSULE_TOKEN"))
        else:
            if url.startswith("sqlite:///"):
                database = Path(url[len("sqlite:///"):])
                if create:
                    database.parent.mkdir(parents=True, exist_ok=True)
                elif not database.exists():
                    from .errors import RegistryError

                    raise RegistryError(f"there is no registry at {database.parent} (no {database.name}); set "
                                        "$MODELCAPSULE_REGISTRY or pass --registry, or create one with "
                                        "`capsule registry init`.")
            from .local import LocalRegistry

            self._backend = LocalRegistry(url, blob_dir, actor=actor, trusted=trusted, create=create)

    @property
    def backend(self) -> Backend:
        """The backend in use (``LocalRegistry`` or ``HttpRegistry``)."""
        return self._backend

    def __repr__(self) -> str:
        return f"Registry({self.location!r})"

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Wait for pending webhook deliveries and release database connections."""
        self._backend.close()

    def register(self, name: str, path: str | os.PathLike[str], *, tags: Mapping[str, str] | None = None,
                 description: str = "", alias: str | None = None, trusted: Iterable[str] = (),
                 parent: str | None = None, model_tags: Mapping[str, str] | None = None) -> ModelVersion:
        """Check the capsule at ``path`` with every load check and store it as the next version of ``name``
        (or return the existing version holding the same bytes). ``trusted`` names are admitted for this
        check and recorded; they never widen a later loader's policy. ``parent`` is a version reference."""
        return self._backend.register(name, path, tags=tags, description=description, alias=alias,
                                      trusted=trusted, parent=parent, model_tags=model_tags)

    def get(self, ref: str) -> ModelVersion:
        """``"fraud@champion"``, ``"fraud/3"`` or ``"fraud"`` (the latest version)."""
        return self._backend.get(ref)

    def model(self, name: str) -> Model:
        return self._backend.model(name)

    def models(self, pattern: str | None = None) -> list[Model]:
        """Every model, by name; ``pattern`` is a glob (``fr*``)."""
        return self._backend.models(pattern)

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, newest first."""
        return self._backend.versions(name)

    def search(self, *, name: str | None = None, tags: Mapping[str, str] | None = None, max_results: int = 100,
               page_token: str | None = None) -> SearchPage:
        """Versions, newest first, by model name glob and tags (on the version or its model); pass the page's
        ``next_page_token`` for the next page."""
        return self._backend.search(name=name, tags=tags, max_results=max_results, page_token=page_token)

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every event of a model, or of one alias, oldest first: who, when, from, to, why, what kind."""
        return self._backend.history(name, alias)

    def fetch(self, ref: str) -> Path:
        """A local, hash-checked copy of the version's capsule."""
        return self._backend.fetch(ref)

    def set_alias(self, name: str, alias: str, version: int, *, reason: str = "") -> AliasEvent:
        """Point ``alias`` at ``version`` (a protected alias needs the admin role)."""
        return self._backend.set_alias(name, alias, version, reason=reason)

    def rollback(self, name: str, alias: str, *, reason: str = "") -> AliasEvent:
        """Move ``alias`` back to its previous target; recorded like any move."""
        return self._backend.rollback(name, alias, reason=reason)

    def delete_alias(self, name: str, alias: str, *, reason: str = "") -> AliasEvent:
        return self._backend.delete_alias(name, alias, reason=reason)

    def protect(self, name: str, alias: str, *, protected: bool = True, reason: str = "") -> AliasEvent:
        """Protect (or with ``protected=False`` unprotect) an alias: moving it then needs the admin role."""
        return self._backend.protect(name, alias, protected=protected, reason=reason)

    def delete(self, name: str, version: int, *, reason: str = "") -> AliasEvent:
        """Delete a version (admin); refused while an alias points to it. Its number is never reused."""
        return self._backend.delete(name, version, reason=reason)

    def set_tags(self, name: str, tags: Mapping[str, str], *, version: int | None = None) -> None:
        """Set tags on the model, or on one version with ``version=``."""
        self._backend.set_tags(name, tags, version=version)

    def delete_tag(self, name: str, key: str, *, version: int | None = None) -> None:
        self._backend.delete_tag(name, key, version=version)

    def record_event(self, name: str, kind: str, *, alias: str | None = None, from_version: int | None = None,
                     to_version: int | None = None, reason: str = "") -> AliasEvent:
        """Record an event that is not a registry change (``serving_failed`` on an alias, say)."""
        return self._backend.record_event(name, kind, alias=alias, from_version=from_version,
                                          to_version=to_version, reason=reason)

    def create_token(self, name: str, role: str) -> str:
        """Create an access token (admin); the returned secret is shown this once and stored only hashed."""
        return self._backend.create_token(name, role)

    def revoke_token(self, name: str) -> None:
        self._backend.revoke_token(name)

    def tokens(self) -> list[TokenInfo]:
        return self._backend.tokens()

    def add_webhook(self, url: str, secret: str, events: list[str] | None = None) -> Webhook:
        """POST every event (or those of the kinds in ``events``) to ``url``, signed with ``secret``."""
        return self._backend.add_webhook(url, secret, events)

    def webhooks(self) -> list[Webhook]:
        return self._backend.webhooks()

    def remove_webhook(self, hook_id: int) -> None:
        self._backend.remove_webhook(hook_id)

    def deliveries(self, hook_id: int | None = None, limit: int = 100) -> list[Delivery]:
        """The webhook delivery log, newest first."""
        return self._backend.deliveries(hook_id, limit)
