"""``audit``: what a capsule or model file would import, found without importing or executing anything.

The audit runs only the *parse* and *audit* steps of loading: the payload's format lists every
``module.qualname`` it names (:meth:`Format.audit`), the trust policy sorts them into trusted and
untrusted, and the report spells out the exact ``trusted=[...]`` and ``--trust`` flags that loading
would need. For capsules it also summarises the manifest and checks every member's hash.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .core.container import DEFAULT_LIMITS, Limits, open_capsule
from .core.members import PlainFile
from .errors import CapsuleError, UnsupportedModelError, UntrustedCodeError, UntrustedTypesError
from .formats import Format, LoadOptions, format_for_file, get_format
from .load import typed_errors
from .security.pickle_stream import compression_of
from .security.policy import TrustPolicy

__all__ = ["AuditReport", "audit", "detect_plain_format"]

_ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class AuditReport:
    """What loading ``path`` would import, and what it would take to trust it.

    ``globals`` lists every name in the order found; ``untrusted`` those the policy refuses;
    ``trusted_arg`` / ``trust_flags`` are what to pass to ``load`` / the command line once you have
    reviewed them. ``runs_code`` is True for formats whose loading runs code from the file (cloudpickle),
    which no list of names can make safe. ``problems`` holds parse errors and hash mismatches.
    """

    path: str
    kind: str
    format: str
    globals: list[str] = field(default_factory=list)
    untrusted: list[str] = field(default_factory=list)
    runs_code: bool = False
    manifest: dict[str, Any] | None = None
    hashes: str = "not applicable"
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when loading would need nothing beyond the current policy and nothing is wrong."""
        return not self.untrusted and not self.problems and not self.runs_code

    @property
    def trusted_arg(self) -> str:
        """The ``trusted=[...]`` argument ``modelcapsule.load`` would need."""
        return "trusted=[" + ", ".join(repr(n) for n in self.untrusted) + "]"

    @property
    def trust_flags(self) -> str:
        """The ``--trust`` flags the command line would need."""
        return " ".join(f"--trust {n}" for n in self.untrusted)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(ok=self.ok, trusted_arg=self.trusted_arg, trust_flags=self.trust_flags)
        return out


def detect_plain_format(path: Path) -> Format:
    """The format of a plain model file: by suffix, else by its first bytes (pickle or joblib)."""
    try:
        return format_for_file(path)
    except UnsupportedModelError:
        with open(path, "rb") as fh:
            head = fh.read(8)
        if head.startswith(b"\x80") or compression_of(head) not in (None, "zfile"):
            return get_format("joblib" if compression_of(head) else "pickle")
        raise


def _is_capsule(path: Path) -> bool:
    if path.is_dir():
        return True
    try:
        format_for_file(path)
        return False
    except UnsupportedModelError:
        with open(path, "rb") as fh:
            return fh.read(4) == _ZIP_MAGIC


def _manifest_summary(manifest: Any) -> dict[str, Any]:
    fmt = dict(manifest.format)
    model = dict(manifest.model or {})
    return {
        "name": manifest.name,
        "created_at": manifest.created_at,
        "framework": model.get("framework"),
        "class": model.get("class"),
        "format": fmt.get("name"),
        "chosen_by": fmt.get("chosen_by"),
        "passed_over": fmt.get("passed_over", {}),
        "files": len(manifest.files),
        "python": (manifest.environment or {}).get("python"),
    }


def audit(path: str | os.PathLike[str], *, trusted: Iterable[str] | TrustPolicy = (),
          limits: Limits | None = None) -> AuditReport:
    """Audit a capsule or a plain ``.pkl``/``.joblib``/``.skops`` (or any registered format's) file.

    Nothing the file names is imported or run: the payload is parsed as data only. Parse errors and hash
    mismatches are reported in ``problems``, not raised; a missing path raises ``FileNotFoundError``.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no capsule or model file at {p}")
    policy = trusted if isinstance(trusted, TrustPolicy) else TrustPolicy(trusted)
    options = LoadOptions(policy=policy, trust_code=False, limits=limits or DEFAULT_LIMITS)
    if _is_capsule(p):
        return _audit_capsule(p, options)
    fmt = detect_plain_format(p)
    report = AuditReport(str(p), "file", fmt.name, runs_code=fmt.runs_code)
    details = {"member": "model/" + p.name}
    try:
        source = PlainFile(p, details["member"], options.limits)
        _fill(report, fmt, source, details, options)
    except CapsuleError as exc:
        report.problems.append(str(exc))
    return report


def _audit_capsule(path: Path, options: LoadOptions) -> AuditReport:
    report = AuditReport(str(path), "capsule", "unknown")
    try:
        reader = open_capsule(path, options.limits)
    except CapsuleError as exc:
        report.problems.append(str(exc))
        return report
    with reader:
        manifest = reader.manifest
        report.manifest = _manifest_summary(manifest)
        report.format = manifest.format_name
        try:
            reader.check_hashes()
            report.hashes = f"ok ({len(manifest.files)} members)"
        except CapsuleError as exc:
            report.hashes = "mismatch"
            report.problems.append(str(exc))
        try:
            fmt = get_format(manifest.format_name)
            report.runs_code = fmt.runs_code
            _fill(report, fmt, reader, dict(manifest.format), options)
        except CapsuleError as exc:
            report.problems.append(str(exc))
    return report


def _fill(report: AuditReport, fmt: Format, source: Any, details: dict[str, Any],
          options: LoadOptions) -> None:
    try:
        with typed_errors(fmt, report.path):  # a hostile payload's builtin errors (deep JSON...) become a problem
            report.globals = list(dict.fromkeys(fmt.audit(source, details, options)))
    except UntrustedTypesError as exc:
        if isinstance(exc, UntrustedCodeError):
            raise
        # a format stricter than the policy (Keras, torch: only names the user trusted widen their safe
        # modes) refuses in its audit step, exactly as the load does; report those names as untrusted
        report.globals = list(exc.names)
        report.untrusted = list(exc.names)
        return
    report.untrusted = options.policy.untrusted(report.globals)
