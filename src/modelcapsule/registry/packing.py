"""A capsule as one file: what the registry stores and what the client uploads.

A registry keeps every version as one ZIP capsule under its digest, so a directory capsule is first
written as the equivalent ZIP capsule (members verbatim, manifest and signature kept, so its hashes and
signature still hold). Used by the embedded registry and by the HTTP client alike; imports no database
code, so the client stays light.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.container import CapsuleWriter, open_capsule

__all__ = ["capsule_file", "pack_directory"]


def pack_directory(directory: Path, destination: Path) -> None:
    """Write a directory capsule as the equivalent ZIP capsule (members verbatim, manifest and signature kept)."""
    with open_capsule(directory) as reader:
        manifest = reader.manifest
        signature = reader.read("capsule.sig") if "capsule.sig" in reader else None
        with CapsuleWriter(destination, overwrite=True) as writer:
            for name in reader.names():
                if name not in ("capsule.json", "capsule.sig"):
                    writer.add(name, reader.view(name))
            writer.finish(manifest, signature)


@contextmanager
def capsule_file(path: str | os.PathLike[str], *, tmp_dir: Path | None = None) -> Iterator[Path]:
    """The capsule at ``path`` as one ZIP file for the block: itself, or for a directory capsule a packed
    copy in a temporary directory (under ``tmp_dir``) removed afterwards."""
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"no capsule at {source}")
    if not source.is_dir():
        yield source
        return
    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        packed = Path(tmp, "packed.capsule")
        pack_directory(source, packed)
        yield packed
