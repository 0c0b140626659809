"""Builders for hostile capsules and model files, shared by the security tests.

Everything here is generated at test time; nothing is downloaded. Capsules are built with the real
:class:`CapsuleWriter` and a manifest whose hashes are correct, so that the check under test (not the
hash check) is what has to stop them. Raw ZIPs are written with :mod:`zipfile` when the point is a
container the writer would never produce (duplicates, ``..`` names, bombs).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from modelcapsule.container import CapsuleWriter
from modelcapsule.manifest import CAPSULE_VERSION, MANIFEST_NAME, Manifest

CANARY_NAME = "PWNED"
"""The file every code-running payload would create (in the directory the test gives it)."""


def manifest_for(files: Mapping[str, bytes], *, format_name: str = "safepickle",
                 details: Mapping[str, Any] | None = None, version: int = CAPSULE_VERSION,
                 **extra: Any) -> dict[str, Any]:
    """A manifest dictionary whose ``files`` hashes ``files`` correctly."""
    doc: dict[str, Any] = {
        "capsule_version": version,
        "name": "hostile",
        "created_at": "2026-01-01T00:00:00Z",
        "model": {"framework": "sklearn", "class": "sklearn.dummy.DummyClassifier", "task": "classification",
                  "methods": ["predict"], "params": {}},
        "format": {"name": format_name, "version": 1, **(details or {})},
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                  for name, data in sorted(files.items())},
        "signature": None,
        "environment": {"python": "3.11", "packages": {}},
        "provenance": {},
        "sample": None,
        "types": [],
        "metadata": {},
    }
    doc.update(extra)
    return doc


def build_capsule(path: Path, members: Mapping[str, bytes], *, layout: str = "zip", compress: bool = False,
                  format_name: str = "safepickle", details: Mapping[str, Any] | None = None) -> Path:
    """A well-formed capsule (correct hashes) holding ``members``, written by the real writer."""
    doc = manifest_for(members, format_name=format_name, details=details)
    manifest = Manifest(
        name=doc["name"], created_at=doc["created_at"], model=doc["model"], format=doc["format"], files={},
        signature=None, environment=doc["environment"],
    )
    with CapsuleWriter(path, layout=layout, compress=compress) as writer:
        for name, data in members.items():
            writer.add(name, data)
        writer.finish(manifest)
    return path


def raw_zip(path: Path, entries: Iterable[tuple[str, bytes]], *, deflate: bool = False) -> Path:
    """A ZIP written member by member exactly as given, duplicates and hostile names included."""
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            zf.writestr(info, data)
    return path


def raw_capsule_zip(path: Path, members: Mapping[str, bytes], *, deflate: bool = False,
                    manifest: Mapping[str, Any] | None = None,
                    extra_entries: Iterable[tuple[str, bytes]] = ()) -> Path:
    """A ZIP capsule with a correct manifest for ``members`` (or the given one) plus ``extra_entries``."""
    doc = manifest if manifest is not None else manifest_for(members)
    entries = [*members.items(), *extra_entries, (MANIFEST_NAME, json.dumps(doc).encode())]
    return raw_zip(path, entries, deflate=deflate)
