"""What registration checks before anything is stored: the capsule opened with every load check (strict
container, member hashes, audit against the registry's trust policy plus the names the registering user
passed, construction, golden sample), and what the audit found, recorded with the version.

The names passed are recorded for information only: they never widen what a later loader trusts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..core.container import open_capsule
from ..errors import CapsuleFormatError
from .store import now

__all__ = ["check_for_registration"]


def check_for_registration(path: Path, *, policy_names: Iterable[str], extra: Iterable[str]) -> tuple[
        dict[str, Any], dict[str, Any]]:
    """Run every load check on the capsule at ``path``; return ``(audit record, manifest)`` or raise the
    typed error that says what failed (untrusted names, a bad hash, a failing golden sample...)."""
    from ..audit import audit
    from ..load import load_capsule

    base, extra = sorted(set(policy_names)), sorted(set(extra))
    with open_capsule(path) as reader:  # a capsule, not a plain model file: those go through `capsule convert`
        if not reader.manifest.files:
            raise CapsuleFormatError(f"{path} lists no members; it is not a capsule")
    loaded = load_capsule(path, trusted=[*base, *extra], verify=True, on_mismatch="ignore", recheck=True)
    under_registry = audit(path, trusted=base)
    record = {
        "checked_at": now(),
        "checks": ["structure", "hashes", "audit", "construct", "golden sample" if loaded.manifest.sample else
                   "no golden sample stored"],
        "format": loaded.manifest.format_name,
        "imports": sorted(under_registry.globals),
        "trusted_by_registry": base,
        "trusted_by_registrant": extra,
        "needed_beyond_registry": sorted(under_registry.untrusted),
        "runs_code": under_registry.runs_code,
        "drift": [{"package": d.name, "saved": d.saved, "installed": d.installed} for d in loaded.drift],
        "size": os.path.getsize(path),
    }
    return record, loaded.manifest.to_dict()
