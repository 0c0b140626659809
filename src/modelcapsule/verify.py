"""verify: every check of a capsule, reported instead of raised."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .core import environment
from .core.container import DEFAULT_LIMITS, CapsuleReader, Limits, open_capsule
from .core.sample import describe_error, excerpt
from .core.uris import resolve_capsule_path
from .errors import (
    CapsuleError,
    PackageDrift,
)
from .formats import LoadOptions, get_format
from .load import construct, framework_of, policy_for, sample_differences
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
    stored_trees: str = "absent"
    """A tree ensemble's stored flat trees (the default serving runtime): absent, ok, or what is wrong."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed (drift alone is reported, not a failure)."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "hashes": self.hashes, "signature": self.signature,
                "drift": [{"package": d.name, "saved": d.saved, "installed": d.installed} for d in self.drift],
                "sample": self.sample, "stored_trees": self.stored_trees, "problems": self.problems}


_BAD_FILE_ERRORS: tuple[type[Exception], ...] = (
    CapsuleError, OSError, ValueError, TypeError, LookupError, AttributeError, ArithmeticError, RecursionError,
    MemoryError, EOFError, AssertionError, RuntimeError,
)
"""What a reader library may still raise on a hostile file. ``verify`` reports them as problems; it never
raises for a bad file (it only raises for bad arguments)."""


def _problem(exc: BaseException) -> str:
    if isinstance(exc, CapsuleError):
        return str(exc)
    return f"the file could not be read ({describe_error(exc)}); it is corrupt or hostile."


def verify(path: str | os.PathLike[str], *, trusted: Iterable[str] | TrustPolicy = (), public_key: Any = None,
           trust_code: bool = False, limits: Limits | None = None) -> VerificationReport:
    """Check a capsule without raising: hashes, signature, drift and golden sample, all reported.

    A corrupt or hostile file gives a report whose ``problems`` say what is wrong; only bad arguments
    (an unknown keyword, a key of the wrong type) raise."""
    path = resolve_capsule_path(path)  # models:/NAME@ALIAS → a local, hash-checked copy
    report = VerificationReport(str(path))
    options = LoadOptions(policy=policy_for(trusted), trust_code=trust_code, limits=limits or DEFAULT_LIMITS)
    try:
        reader = open_capsule(path, options.limits)
    except _BAD_FILE_ERRORS as exc:
        report.problems.append(_problem(exc))
        return report
    with reader:
        try:
            _verify_open(reader, report, options, public_key, str(path))
        except _BAD_FILE_ERRORS as exc:
            report.problems.append(_problem(exc))
    return report


def _verify_open(reader: CapsuleReader, report: VerificationReport, options: LoadOptions, public_key: Any,
                 what: str) -> None:
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
                return
    try:
        reader.check_hashes()
        report.hashes = f"ok ({len(manifest.files)} members)"
    except CapsuleError as exc:
        report.hashes = "mismatch"
        report.problems.append(str(exc))
        return
    _verify_stored_trees(reader, report, options)
    fmt = get_format(manifest.format_name)
    model, folded = construct(fmt, reader, dict(manifest.format), options, what)
    framework = framework_of(model, manifest)
    report.drift += [d for d in folded if d.name not in {x.name for x in report.drift}]
    if not manifest.sample:
        report.sample["-"] = "no golden sample stored"
        return
    report.sample["-"] = "not run"
    checks = sample_differences(reader, manifest, framework, model)
    del report.sample["-"]
    for check in checks:
        report.sample[check.method] = "ok" if check.ok else "differs"
        if check.difference is not None:
            report.problems.append(f"{excerpt(check.method, text=True)}(): {check.difference}")


def _verify_stored_trees(reader: CapsuleReader, report: VerificationReport, options: LoadOptions) -> None:
    """The checks ``capsule serve`` runs before serving stored flat trees: every array, and the golden
    sample reproduced through them bit for bit."""
    from .frameworks.tree_capsule import has_stored_trees, stored_tree_predictor

    if reader.manifest.trees is None:
        return
    if not has_stored_trees(reader.manifest):
        report.stored_trees = "present, in a layout this release does not read (the Python model serves)"
        return

    def unused() -> Any:  # pragma: no cover - verify asks only for what the trees compute
        raise AssertionError("verify never asks the stored trees for another output")

    try:
        stored_tree_predictor(reader, reader.manifest, options.limits, verify=True, python=unused)
    except CapsuleError as exc:
        report.stored_trees = "failed"
        report.problems.append(f"stored trees: {exc}")
    else:
        report.stored_trees = "ok"
