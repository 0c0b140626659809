"""Serving models from the model registry: ``capsule serve models:/fraud@champion models:/iris``.

Each ``models:/NAME[@ALIAS]`` source serves every version of NAME (all addressable by number) with the
model's aliases as its labels; the unversioned routes follow ALIAS when one is given, else the newest
version. A scan asks the registry for the model's versions and aliases only; a version's capsule is
fetched (by digest, hash-checked) when it is loaded, and then loaded with every check like any other
capsule, under this server's own trust policy: names trusted at registration are never trusted here.

What the server saw is written back to the registry as events on the alias: a target that failed to
load or verify (kind ``serving_failure``), a version swapped out for its error rate after a swap
(``serving_error_rate``), and, with ``rollback_on_failure``, the alias moved back (the registry's own
``rollback`` event). Each names the server (host, port, pid) in its reason.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ModelConfig

if TYPE_CHECKING:
    from ..registry import Registry
    from .repository import FoundVersion

__all__ = ["RegistryModel", "RegistryModels", "is_registry_uri", "parse_registry_source"]

log = logging.getLogger("modelcapsule.serving")

URI_PREFIX = "models:/"


def is_registry_uri(source: str | os.PathLike[str]) -> bool:
    """Whether a ``capsule serve`` source names a registry model rather than a path."""
    return str(source).startswith(URI_PREFIX)


@dataclass(frozen=True)
class RegistryModel:
    """One registry model a server serves, and the alias its unversioned routes follow (None: the newest)."""

    name: str
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"{URI_PREFIX}{self.name}" + (f"@{self.alias}" if self.alias else "")


def parse_registry_source(source: str) -> RegistryModel:
    """``models:/NAME`` or ``models:/NAME@ALIAS``; a pinned version is refused, since a server follows a model."""
    from ..registry.refs import parse_ref

    ref = parse_ref(source)
    if ref.version is not None:
        raise ValueError(
            f"{source}: capsule serve follows a model, not one version: serve models:/{ref.name} (every version "
            f"is then served at /v2/models/{ref.name}/versions/N) or models:/{ref.name}@ALIAS."
        )
    return RegistryModel(ref.name, ref.alias)


def server_identity(port: int | None = None) -> str:
    """How events recorded by this server name it: ``host:port pid N``."""
    where = socket.gethostname() + (f":{port}" if port else "")
    return f"{where} pid {os.getpid()}"


class RegistryModels:
    """The registry side of a server's sources: scans, fetches and reports back."""

    def __init__(
        self,
        open_registry: Callable[[], Registry],
        models: list[RegistryModel],
        *,
        rollback_on_failure: bool = False,
        identity: str | None = None,
    ) -> None:
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"each registry model may be given once: {names}")
        self._open_registry = open_registry
        self._registry: tuple[int, Registry] | None = None
        self.models = {m.name: m for m in models}
        self.rollback_on_failure = rollback_on_failure
        self.identity = identity or server_identity()
        self._reported: set[tuple[str, int, str]] = set()  # (model, version, alias) already reported

    @property
    def registry(self) -> Registry:
        """This process's connection to the registry: opened on first use in each worker, never shared
        across a fork (database connections must not be)."""
        if self._registry is None or self._registry[0] != os.getpid():
            self._registry = (os.getpid(), self._open_registry())
        return self._registry[1]

    def check(self) -> None:
        """Fail at start, with what to do, when a model or a followed alias does not exist."""
        for model in self.models.values():
            record = self.registry.model(model.name)  # raises the registry's not-found error with close names
            if model.alias and model.alias not in record.aliases:
                known = ", ".join(sorted(record.aliases)) or "none"
                raise ValueError(
                    f"model {model.name!r} has no alias {model.alias!r} (its aliases: {known}); set it with "
                    f"`capsule alias set {model.name} {model.alias} VERSION` or serve models:/{model.name}."
                )

    def scan(self, defaults: ModelConfig) -> tuple[dict[str, dict[int, FoundVersion]], dict[str, ModelConfig]]:
        """Every version of every followed model, and its configuration (``defaults`` with every version
        served, the aliases as labels, and the followed alias)."""
        from .repository import FoundVersion

        found: dict[str, dict[int, FoundVersion]] = {}
        configs: dict[str, ModelConfig] = {}
        for model in self.models.values():
            record = self.registry.model(model.name)
            versions = self.registry.versions(model.name)
            found[model.name] = {
                v.version: FoundVersion(
                    model.name,
                    v.version,
                    Path(f"{URI_PREFIX}{v.name}/{v.version}"),
                    (v.digest,),
                    fetch=partial(self.registry.fetch, f"{v.name}/{v.version}"),
                )
                for v in versions
            }
            configs[model.name] = replace(
                defaults,
                version_policy="all",
                labels=dict(record.aliases),
                follow=model.alias,
            )
        return found, configs

    def report_failure(self, name: str, version: int, labels: dict[str, int], serving: dict[str, int | None],
                       reason: str, *, kind: str = "serving_failure") -> None:
        """Record on every alias that targets ``version`` that this server refused it (once per alias and
        version), and move the alias back when asked to. Registry errors are logged, never raised: the
        server keeps serving what it serves."""
        if name not in self.models:
            return
        for alias, target in sorted(labels.items()):
            if target != version or (name, version, alias) in self._reported:
                continue
            self._reported.add((name, version, alias))
            text = f"{self.identity}: {reason}"[:2000]
            try:
                self.registry.record_event(name, kind, alias=alias, from_version=serving.get(alias),
                                           to_version=version, reason=text)
                log.error("model %s alias %s: version %d refused (%s); recorded in the registry", name, alias,
                          version, reason)
                if self.rollback_on_failure:
                    why = f"failed: {reason}" if kind == "serving_failure" else reason
                    moved = f"rolled back by {self.identity}: version {version} {why}"
                    self.registry.rollback(name, alias, reason=moved[:2000])
                    log.warning("model %s alias %s moved back from version %d", name, alias, version)
            except Exception as exc:  # the registry may be down: keep serving, say so
                log.error("could not record the failure of %s/%d on alias %s in the registry: %s: %s", name,
                          version, alias, type(exc).__name__, exc)

    def watch(self, on_change: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``on_change`` when one of these models changes in a PostgreSQL registry (LISTEN/NOTIFY);
        the function that stops listening, or None for registries that can only be polled."""
        from ..registry.changes import listen

        followed = set(self.models)

        def heard(model: str) -> None:
            if model in followed:
                on_change()

        return listen(self.registry.location, heard)

    def describe(self) -> dict[str, Any]:
        return {"registry": repr(self.registry), "models": [m.uri for m in self.models.values()]}
