"""The registry in this process: a database (SQLite or PostgreSQL) plus a blob directory.

Registration runs in the order that keeps the two consistent: the capsule is copied into the blob
directory's ``tmp/`` (hashed on the way); an identical version is returned if the name already holds
these bytes; every load check runs on the copy; the copy is renamed into place; only then are the rows
committed, in one transaction.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..errors import UntrustedTypesError
from ..security.policy import TrustPolicy
from . import auth, webhooks
from .actors import Actor, local_actor
from .blobs import BlobStore, StagedBlob
from .checks import check_for_registration
from .database import create_engine, ensure_schema
from .packing import capsule_file
from .refs import parse_ref
from .store import NewVersion, Store
from .types import AliasEvent, Delivery, Model, ModelVersion, SearchPage, TokenInfo, Webhook

__all__ = ["CheckReport", "LocalRegistry"]


def _untrusted_at_registration(names: list[str], model: str) -> UntrustedTypesError:
    error = UntrustedTypesError(names, source=f"the capsule registered as {model!r}")
    error.args = (str(error).replace("to modelcapsule.load", "to Registry.register"),)
    return error


@dataclass
class CheckReport:
    """What ``check`` found: errors (exit 1) and warnings (blobs no row names: exit 0, ``gc`` removes them)."""

    checked: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "errors": self.errors, "warnings": self.warnings,
                "orphans": self.orphans}


class LocalRegistry:
    """Registry operations against a database URL and a blob directory, as ``actor``."""

    def __init__(self, url: str, blob_dir: str | os.PathLike[str], *, actor: Actor | None = None,
                 trusted: Iterable[str] = (), create: bool = True, check_schema: bool = True) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.location = sa.make_url(url).render_as_string(hide_password=True)  # usable in messages and commands
        if check_schema:
            try:
                ensure_schema(self.engine, self.location, create=create)
            except BaseException:
                self.engine.dispose()
                raise
        self.blobs = BlobStore(blob_dir)
        self.store = Store(self.engine, self.location)
        self.actor = actor or local_actor()
        self.trusted = tuple(TrustPolicy(trusted).extra)
        self.dispatcher = webhooks.Dispatcher(self.engine)
        self.store.listeners.append(self.dispatcher)

    def as_actor(self, actor: Actor) -> LocalRegistry:
        """The same registry (same engine, blobs and webhooks), acting as ``actor``."""
        other = object.__new__(LocalRegistry)
        other.__dict__.update(self.__dict__)
        other.actor = actor
        return other

    def close(self) -> None:
        self.dispatcher.flush()
        self.engine.dispose()

    # ----------------------------------------------------------------------------------- registration

    def register(self, name: str, path: str | os.PathLike[str], *, tags: Mapping[str, str] | None = None,
                 description: str = "", alias: str | None = None, trusted: Iterable[str] = (),
                 parent: str | None = None, model_tags: Mapping[str, str] | None = None) -> ModelVersion:
        with capsule_file(path, tmp_dir=self.tmp_dir()) as source:
            staged = self.blobs.stage_file(source)
        return self.register_staged(name, staged, tags=tags, description=description, alias=alias, trusted=trusted,
                                    parent=parent, model_tags=model_tags)

    def tmp_dir(self) -> Path:
        tmp = self.blobs.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    def register_staged(self, name: str, staged: StagedBlob, *, tags: Mapping[str, str] | None = None,
                         description: str = "", alias: str | None = None, trusted: Iterable[str] = (),
                         parent: str | None = None, model_tags: Mapping[str, str] | None = None) -> ModelVersion:
        try:
            self.actor.require("write", f"registering {name}")
            parse_ref(name)
            existing = self.store.find_digest(name, staged.digest)
            if existing is not None:
                self.blobs.discard(staged)
                return existing
            parent_ref = None if parent is None else self.store.get(parse_ref(parent)).ref
            extra = sorted(TrustPolicy(trusted).extra)
            try:
                audit, manifest = check_for_registration(staged.path, policy_names=self.trusted, extra=extra)
            except UntrustedTypesError as exc:
                if type(exc) is not UntrustedTypesError:
                    raise
                raise _untrusted_at_registration(exc.names, name) from None
            self.blobs.commit(staged)
        except BaseException:
            self.blobs.discard(staged)
            raise
        new = NewVersion(digest=staged.digest, size=staged.size, description=description, tags=tags or {},
                         parent=parent_ref, trusted=extra, audit=audit, manifest=manifest)
        version, _created = self.store.add_version(self.actor, name, new, alias=alias, model_tags=model_tags)
        return version

    # ----------------------------------------------------------------------------------- reads

    def get(self, ref: str) -> ModelVersion:
        return self.store.get(parse_ref(ref))

    def model(self, name: str) -> Model:
        return self.store.model(name)

    def models(self, pattern: str | None = None) -> list[Model]:
        return self.store.models(pattern)

    def versions(self, name: str) -> list[ModelVersion]:
        return self.store.versions(name)

    def search(self, *, name: str | None = None, tags: Mapping[str, str] | None = None, max_results: int = 100,
               page_token: str | None = None) -> SearchPage:
        return self.store.search(name=name, tags=tags, max_results=max_results, page_token=page_token)

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        return self.store.history(name, alias)

    def fetch(self, ref: str) -> Path:
        """The blob of ``ref``, hash-checked (it is already local)."""
        version = self.get(ref)
        problem = self.blobs.check(version.digest)
        if problem is not None:
            from ..errors import IntegrityError

            raise IntegrityError(f"{version.ref}: {problem}; run `capsule registry check`.")
        return self.blobs.path(version.digest)

    def open_blob(self, ref: str) -> tuple[ModelVersion, Path]:
        version = self.get(ref)
        return version, self.blobs.path(version.digest)

    # ----------------------------------------------------------------------------------- writes

    def set_alias(self, name: str, alias: str, version: int, *, reason: str = "") -> AliasEvent:
        return self.store.set_alias(self.actor, name, alias, version, reason)

    def rollback(self, name: str, alias: str, *, reason: str = "") -> AliasEvent:
        return self.store.rollback(self.actor, name, alias, reason)

    def delete_alias(self, name: str, alias: str, *, reason: str = "") -> AliasEvent:
        return self.store.delete_alias(self.actor, name, alias, reason)

    def protect(self, name: str, alias: str, *, protected: bool = True, reason: str = "") -> AliasEvent:
        return self.store.protect(self.actor, name, alias, protected, reason)

    def delete(self, name: str, version: int, *, reason: str = "") -> AliasEvent:
        return self.store.delete_version(self.actor, name, version, reason)

    def set_tags(self, name: str, tags: Mapping[str, str], *, version: int | None = None) -> None:
        self.store.set_tags(self.actor, name, tags, version)

    def delete_tag(self, name: str, key: str, *, version: int | None = None) -> None:
        self.store.delete_tag(self.actor, name, key, version)

    def record_event(self, name: str, kind: str, *, alias: str | None = None, from_version: int | None = None,
                     to_version: int | None = None, reason: str = "") -> AliasEvent:
        return self.store.record_event(self.actor, name, kind, alias=alias, from_version=from_version,
                                       to_version=to_version, reason=reason)

    # ----------------------------------------------------------------------------------- upkeep

    def check(self) -> CheckReport:
        """Every row against its blob, every blob against its hash; blobs no row names are warnings."""
        self.actor.require("admin", "checking the registry")
        report = CheckReport()
        named = self.store.digests()
        for digest, refs in sorted(named.items()):
            report.checked += 1
            problem = self.blobs.check(digest)
            if problem is not None:
                report.errors.append(f"{', '.join(refs)}: {problem}")
        for digest in self.blobs.digests():
            if digest not in named:
                problem = self.blobs.check(digest)
                if problem is not None:
                    report.errors.append(problem)
                report.orphans.append(digest)
                report.warnings.append(f"blob {digest} is named by no version; `capsule registry gc` removes it")
        return report

    def gc(self, *, dry_run: bool = False, grace_s: float = 3600.0) -> list[str]:
        """Remove blobs no row names (and temp files of writers that died); returns the digests removed.

        Blobs written in the last ``grace_s`` seconds are kept: a registration renames its blob into place
        just before committing the row that names it."""
        self.actor.require("admin", "collecting garbage")
        named = self.store.digests()
        orphans = [d for d in self.blobs.digests() if d not in named and self.blobs.age_s(d) >= grace_s]
        if not dry_run:
            named = self.store.digests()  # re-read: a version committed meanwhile keeps its blob
            orphans = [d for d in orphans if d not in named]
            self.blobs.remove(orphans)
            for stale in self.blobs.stale_temps(max(grace_s, 0.0)):
                stale.unlink(missing_ok=True)
        return orphans

    # ----------------------------------------------------------------------------------- access

    def create_token(self, name: str, role: str) -> str:
        return auth.create_token(self.engine, self.actor, name, role)

    def revoke_token(self, name: str) -> None:
        auth.revoke_token(self.engine, self.actor, name)

    def tokens(self) -> list[TokenInfo]:
        return auth.list_tokens(self.engine, self.actor)

    def authenticate(self, secret: str) -> Actor | None:
        return auth.authenticate(self.engine, secret)

    def add_webhook(self, url: str, secret: str, events: list[str] | None = None) -> Webhook:
        return webhooks.add_webhook(self.engine, self.actor, url, secret, events)

    def webhooks(self) -> list[Webhook]:
        return webhooks.list_webhooks(self.engine, self.actor)

    def remove_webhook(self, hook_id: int) -> None:
        webhooks.remove_webhook(self.engine, self.actor, hook_id)

    def deliveries(self, hook_id: int | None = None, limit: int = 100) -> list[Delivery]:
        return webhooks.deliveries(self.engine, self.actor, hook_id, limit)
