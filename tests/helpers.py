"""Small builders shared by the core tests: fitted models and capsules rewritten member by member."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from modelcapsule.core.container import CapsuleWriter
from modelcapsule.core.manifest import MANIFEST_NAME, parse_manifest


def iris_forest() -> tuple[RandomForestClassifier, np.ndarray, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    return RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y), x, y


def rewrite_capsule(src: Path, dst: Path, edit: Callable[[str, bytes], bytes | None],
                    edit_manifest: Callable[[dict], None] | None = None) -> None:
    """Copy a capsule, letting ``edit`` change (or drop, by returning None) members, and write a
    manifest whose hashes match the new bytes, so only the change itself is what a loader sees."""
    with zipfile.ZipFile(src) as zf:
        manifest = parse_manifest(zf.read(MANIFEST_NAME))
        members = {n: zf.read(n) for n in zf.namelist() if n != MANIFEST_NAME}
    with CapsuleWriter(dst, overwrite=True) as writer:
        for name, data in members.items():
            new = edit(name, data)
            if new is not None:
                writer.add(name, new)
        if edit_manifest is not None:
            edit_manifest(manifest.__dict__)
        writer.finish(manifest)
