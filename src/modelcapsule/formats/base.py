"""The shape every format implements, and the member access it is given.

The member access shapes (:class:`MemberSink`, :class:`MemberSource`) live in
:mod:`modelcapsule.core.members`, since the golden sample reads and writes members too; they are
re-exported here for format authors.

A format turns a payload into members under ``model/`` and back. Loading is always three steps that
cannot be reordered: :meth:`Format.audit` parses plain data and imports nothing; the loader checks the
names it found against the trust policy; only then :meth:`Format.load` constructs the object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..core.container import DEFAULT_LIMITS, Limits
from ..core.members import MemberSink, MemberSource
from ..security.policy import TrustPolicy

__all__ = ["Format", "LoadOptions", "MemberSink", "MemberSource", "SaveResult"]


@dataclass
class SaveResult:
    """What a format reports after saving: details for the manifest's ``format`` section (``member``
    names its main member) and the names the payload will import (for information)."""

    details: dict[str, Any]
    types: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoadOptions:
    """Everything a format may consult while auditing and loading."""

    policy: TrustPolicy
    trust_code: bool = False
    limits: Limits = DEFAULT_LIMITS
    device: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Format(Protocol):
    """How one kind of payload becomes members and back.

    ``runs_code`` is True when loading can execute code from the file even after the audit (only
    ``cloudpickle``); such formats are refused unless the caller passes ``trust_code=True`` and are
    never chosen automatically. ``safety`` orders formats for ``format="auto"``: lower is safer.
    ``extensions`` are the plain-file suffixes this format reads directly (``.pkl``, ``.skops``...).
    """

    name: ClassVar[str]
    runs_code: ClassVar[bool]
    safety: ClassVar[int]
    extensions: ClassVar[tuple[str, ...]]

    def supports(self, model: Any) -> bool:
        """Whether this format can write ``model`` (cheap check; saving may still fail)."""
        ...

    def save(self, model: Any, sink: MemberSink) -> SaveResult:
        """Write ``model`` as members under ``model/``."""
        ...

    def audit(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> list[str]:
        """Every ``module.qualname`` that loading would import, found without importing anything."""
        ...

    def load(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> Any:
        """Construct the object. Called only after :meth:`audit` and the policy check passed."""
        ...
