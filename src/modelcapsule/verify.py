"""verify: every check of a capsule, reported instead of raised."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .core import environment
from .core.container import DEFAULT_LIMITS, Limits, open_capsule
from .core.uris import resolve_capsule_path
from .errors import (
    CapsuleError,
    PackageDrift,
)
from .formats import LoadOptions, get_format
from .frameworks import get_framework
from .load import construct, policy_for, sample_differences
from .security.policy import TrustPolicy

__all__ = ["VerificationReport", "verify"]

@dataclass
class VerificationReport:
    """What ``verify`` checked: hashes, signature, environment drift, golden sample."""

    path: str
    hashes: str = "not checked"
    signature: str = "absent"
    drift: list[PackageDrift] = field(default_factory=list)
    sample: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed (drift alone is reported, not a failure)."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "hashes": self.hashes, "signature": self.signature,
                "drift": [{"package": d.name, "saved": d.saved, "installed": d.installed} for d in self.drift],
                "sample": self.sample, "problems": self.problems}


def verify(path: str | os.PathLike[str], *, trusted: Iterable[str] | TrustPolicy = (), public_key: Any = None,
           trust_code: bool = False, limits: Limits | None = None) -> VerificationReport:
    """Check a capsule without raising: hashes, signature, drift and golden sample, all reported."""
    path = resolve_capsule_path(path)  # models:/NAME@ALIAS → a local, hash-checked copy
    report = VerificationReport(str(path))
    options = LoadOptions(policy=policy_for(trusted), trust_code=trust_code, limits=limits or DEFAULT_LIMITS)
    try:
        reader = open_capsule(path, options.limits)
    except (CapsuleError, OSError) as exc:
        report.problems.append(str(exc))
        return report
    with reader:
        manifest = reader.manifest
        report.drift = environment.compare_environment(manifest.environment)
        if public_key is not None or "capsule.sig" in reader:
            report.signature = "present, not checked (pass a public key)" if public_key is None else "valid"
            if public_key is not None:
                from .security.signing import check_signature

                try:
                    check_signature(reader, public_key)
                except CapsuleError as exc:
                    report.signature = "invalid"
                    report.problems.append(str(exc))
                    return report
        try:
            reader.check_hashes()
            report.hashes = f"ok ({len(manifest.files)} members)"
        except CapsuleError as exc:
            report.hashes = "mismatch"
            report.problems.append(str(exc))
            return report
        try:
            fmt = get_format(manifest.format_name)
            framework = get_framework(manifest.framework)
            model, folded = construct(fmt, reader, dict(manifest.format), options, str(path))
        except CapsuleError as exc:
            report.problems.append(str(exc))
            return report
        report.drift += [d for d in folded if d.name not in {x.name for x in report.drift}]
        if not manifest.sample:
            report.sample["-"] = "no golden sample stored"
            return report
        for method, diff, _error in sample_differences(reader, manifest, framework, model):
            report.sample[method] = "ok" if diff is None else "differs"
            if diff is not None:
                report.problems.append(f"{method}(): {diff}")
    return report
