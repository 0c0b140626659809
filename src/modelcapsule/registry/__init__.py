"""The model registry: where a team keeps capsules, moves aliases and sees who did what (DESIGN §8).

``Registry`` is also ``modelcapsule.Registry`` (imported lazily: ``import modelcapsule`` does not import
SQLAlchemy). Not to be confused with :class:`modelcapsule.core.extensions.Registry`, the table of formats
and frameworks.
"""

from __future__ import annotations

from .errors import (
    AliasNotFoundError,
    AuthenticationError,
    ConflictError,
    ModelNotFoundError,
    PermissionDeniedError,
    RegistryError,
    SchemaOutdatedError,
    VersionNotFoundError,
)
from .service import Registry
from .types import AliasEvent, Delivery, Model, ModelVersion, SearchPage, TokenInfo, Webhook

__all__ = [
    "AliasEvent",
    "AliasNotFoundError",
    "AuthenticationError",
    "ConflictError",
    "Delivery",
    "Model",
    "ModelNotFoundError",
    "ModelVersion",
    "PermissionDeniedError",
    "Registry",
    "RegistryError",
    "SchemaOutdatedError",
    "SearchPage",
    "TokenInfo",
    "VersionNotFoundError",
    "Webhook",
]
