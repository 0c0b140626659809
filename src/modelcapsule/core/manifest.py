"""The capsule manifest (``capsule.json``): schema, versions and the readers for every version.

The manifest is plain JSON. It is parsed without importing anything the file names, and it is the only
thing a signature covers: it holds the SHA-256 of every other member.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import CapsuleFormatError
from ..types import Signature
from .manifest_schema import check_sections, check_signature

__all__ = ["CAPSULE_VERSION", "MANIFEST_NAME", "SIGNATURE_NAME", "FileEntry", "Manifest", "parse_manifest"]

MANIFEST_NAME = "capsule.json"
SIGNATURE_NAME = "capsule.sig"

CAPSULE_VERSION = 1
"""The manifest version this release writes.

How to bump it: (1) copy the current reader in ``_READERS`` to a frozen ``_read_v<N>`` function that
keeps reading manifests exactly as they were written; (2) increase this constant and write the new
reader; (3) add a capsule written by the previous release to ``tests/data/`` and a test that loads it.
Never change or drop an older reader: a capsule written today must load in every later release.
"""


@dataclass(frozen=True)
class FileEntry:
    """One member of the capsule: its SHA-256 (hex) and size in bytes."""

    sha256: str
    size: int


@dataclass
class Manifest:
    """Everything known about a saved model without loading it (DESIGN §3)."""

    name: str
    created_at: str
    model: dict[str, Any]
    format: dict[str, Any]
    files: dict[str, FileEntry]
    signature: Signature | None
    environment: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)
    sample: dict[str, Any] | None = None
    types: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    onnx: dict[str, Any] | None = None
    trees: dict[str, Any] | None = None
    """The stored flat trees of a tree ensemble (``trees/*.npy``), served without scikit-learn: see
    :mod:`modelcapsule.frameworks.tree_store` and :func:`.manifest_schema.check_trees`."""
    evaluation: dict[str, Any] | None = None
    capsule_version: int = CAPSULE_VERSION

    @property
    def format_name(self) -> str:
        return str(self.format["name"])

    @property
    def framework(self) -> str:
        return str(self.model.get("framework", "unknown"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "capsule_version": self.capsule_version,
            "name": self.name,
            "created_at": self.created_at,
            "model": self.model,
            "format": self.format,
            "files": {k: {"sha256": v.sha256, "size": v.size} for k, v in sorted(self.files.items())},
            "signature": None if self.signature is None else self.signature.to_dict(),
            "environment": self.environment,
            "provenance": self.provenance,
            "sample": self.sample,
            "types": self.types,
            "metadata": self.metadata,
        }
        if self.onnx is not None:
            out["onnx"] = self.onnx
        if self.trees is not None:
            out["trees"] = self.trees
        if self.evaluation is not None:
            out["evaluation"] = self.evaluation
        return out

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=False, default=str).encode()


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _require(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in data:
        raise CapsuleFormatError(f"capsule.json has no {key!r} field; the manifest is incomplete or corrupt.")
    value = data[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise CapsuleFormatError(
            f"capsule.json field {key!r} should be {names}, not {type(value).__name__}; the manifest is corrupt."
        )
    return value


def _optional_object(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CapsuleFormatError(f"capsule.json field {key!r} should be an object; the manifest is corrupt.")
    return dict(value)


def _read_v1(data: Mapping[str, Any]) -> Manifest:
    files_raw = _require(data, "files", dict)
    files: dict[str, FileEntry] = {}
    for member, entry in files_raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or not isinstance(
            entry.get("size"), int
        ):
            raise CapsuleFormatError(f"capsule.json entry for member {member!r} needs a sha256 string and a size.")
        sha, size = entry["sha256"], entry["size"]
        if not _SHA256_HEX.fullmatch(sha) or isinstance(size, bool) or size < 0:
            raise CapsuleFormatError(f"capsule.json entry for member {member!r} has a malformed hash or size.")
        files[str(member)] = FileEntry(sha, size)
    fmt = _require(data, "format", dict)
    for key in ("name", "created_at"):
        _require(data, key, str)
    for key in ("model", "environment"):
        _require(data, key, dict)
    check_sections(data)
    signature = check_signature(data.get("signature"))
    sample = data.get("sample")
    types_ = data.get("types", [])
    if not isinstance(types_, list) or not all(isinstance(t, str) for t in types_):
        raise CapsuleFormatError("capsule.json 'types' should be a list of names.")
    onnx = data.get("onnx")
    trees = data.get("trees")
    evaluation = data.get("evaluation")
    return Manifest(
        capsule_version=1,
        name=str(_require(data, "name", str)),
        created_at=str(_require(data, "created_at", str)),
        model=dict(_require(data, "model", dict)),
        format=dict(fmt),
        files=files,
        signature=signature,
        environment=dict(_require(data, "environment", dict)),
        provenance=_optional_object(data, "provenance"),
        sample=sample,
        types=list(types_),
        metadata=_optional_object(data, "metadata"),
        onnx=onnx if isinstance(onnx, dict) else None,
        trees=trees if isinstance(trees, dict) else None,
        evaluation=evaluation if isinstance(evaluation, dict) else None,
    )


_READERS: dict[int, Callable[[Mapping[str, Any]], Manifest]] = {1: _read_v1}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # "1e400" parses as infinity, which JSON cannot hold
        raise ValueError(f"{text} is out of the range of a float")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse an object that repeats a key: parsers disagree on which copy wins, so it is ambiguous."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def parse_manifest(raw: bytes) -> Manifest:
    """Parse ``capsule.json`` bytes into a :class:`Manifest`, with the reader for its version.

    Raises :class:`CapsuleFormatError` for malformed JSON, missing fields, or a version newer than this
    release reads.
    """
    try:
        data = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float,
                          object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError, MemoryError) as exc:  # ValueError: over-long integers
        raise CapsuleFormatError(f"capsule.json is not valid JSON ({type(exc).__name__}: {str(exc)[:200]}); "
                                 "the capsule is corrupt.") from exc
    if not isinstance(data, dict):
        raise CapsuleFormatError("capsule.json should hold a JSON object; the capsule is corrupt.")
    version = data.get("capsule_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CapsuleFormatError(f"capsule.json has no valid capsule_version (got {version!r}).")
    if version > CAPSULE_VERSION:
        raise CapsuleFormatError(
            f"this capsule has capsule_version {version}, newer than this modelcapsule reads "
            f"(up to {CAPSULE_VERSION}). Upgrade modelcapsule (pip install -U modelcapsule) to load it."
        )
    return _READERS[version](data)
