"""``skops``: skops.io files (``.skops``) and payloads, built by modelcapsule's own rules.

A ``.skops`` file is a ZIP holding ``schema.json`` (a tree of nodes, each naming the skops loader, the
``__module__`` and ``__class__`` it would build) and ``.npy`` members. skops is used to *write* them only.
Reading never goes through ``skops.io.load``: its ``ObjectNode`` is pickle's NEWOBJ + BUILD without the
safe unpickler's checks, so trusting a default name there (a scipy distribution, whose ``__setstate__``
executes a template from the file) runs code. Instead :mod:`modelcapsule.security.skops_build` walks the
schema itself, mapping each node onto the safe unpickler's primitives and rules: the audit is that walk's
dry run (nothing imported or built), and the load is the same dry run, the policy check, then the build.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..core.container import DEFAULT_LIMITS, Limits
from ..security.skops_build import audit_skops, load_skops
from ..security.skops_members import read_schema
from ..security.skops_schema import schema_protocol
from .base import LoadOptions, MemberSink, MemberSource, SaveResult
from .pickle import member_of

__all__ = ["SkopsFormat", "schema_names"]

STREAM = "model/model.skops"


def schema_names(data: bytes | memoryview, *, what: str, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    """Every ``module.qualname`` a skops file would import (for a file the caller wrote: nothing is checked
    but the format)."""
    return audit_skops(bytes(data), what=what, policy=None, limits=limits)


class SkopsFormat:
    """skops.io's format, read by our own schema walk and held to the exact trust policy."""

    name: ClassVar[str] = "skops"
    runs_code: ClassVar[bool] = False
    safety: ClassVar[int] = 10
    extensions: ClassVar[tuple[str, ...]] = (".skops",)

    def supports(self, model: Any) -> bool:
        return True

    def save(self, model: Any, sink: MemberSink) -> SaveResult:
        import skops.io

        try:
            data = skops.io.dumps(model)
        except (TypeError, ValueError, AttributeError, NotImplementedError) as exc:
            raise TypeError(f"skops cannot store this model: {type(exc).__name__}: {exc}") from exc
        sink.add(STREAM, data)
        limits = Limits(max_manifest_size=1 << 30, max_nesting_depth=1 << 10)
        schema, _members = read_schema(data, STREAM, limits)
        return SaveResult({"member": STREAM, "skops_protocol": schema_protocol(schema, STREAM)},
                          schema_names(data, what=STREAM, limits=limits))

    def audit(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> list[str]:
        member = member_of(details, STREAM)
        return audit_skops(bytes(source.view(member)), what=member, policy=options.policy, limits=options.limits)

    def load(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> Any:
        member = member_of(details, STREAM)
        return load_skops(bytes(source.view(member)), what=member, policy=options.policy, limits=options.limits)


FORMATS = (SkopsFormat(),)
