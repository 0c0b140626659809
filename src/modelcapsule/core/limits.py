"""Resource caps and the one opt-in fast path of reading a capsule: :class:`Limits`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True)
class Limits:
    """Resource caps applied while reading a capsule or model file. Raise one only for files you trust."""

    max_member_size: int = 16 << 30
    """Largest single member, uncompressed (bytes)."""
    max_total_size: int = 64 << 30
    """Sum of all members, uncompressed (bytes)."""
    max_members: int = 100_000
    """Number of members."""
    max_compression_ratio: int = 200
    """Uncompressed/compressed size of one deflated member (zip bombs have ratios in the thousands)."""
    max_manifest_size: int = 16 << 20
    """Size of ``capsule.json`` (bytes)."""
    max_array_elements: int = 1 << 34
    """Elements in one array built while loading."""
    max_pickle_size: int = 4 << 30
    """Size of one pickle stream (bytes)."""
    max_load_expansion: int = 16
    """Bytes a pickle stream may make loading allocate (arrays, copies, containers) per byte of the stream
    and its buffers, on top of 64 MiB. Arrays written by numpy need about 1; a few bytes of a hostile
    stream asking for gigabytes need far more."""
    max_nesting_depth: int = 100
    """Levels of nesting in a model description read from a file (the nodes of a skops schema)."""
    max_sample_bytes: int = 256 << 20
    """Size of the golden sample's members together (bytes): inputs and recorded outputs."""
    map_files: bool | None = None
    """Map stored members from the file (zero copy, shared between processes) and reuse recorded hash
    checks, instead of reading each member once into private memory. Sound only while no one writes the
    file in place; honoured only for files no one but their owner (you or root) can write. None: the
    ``MODELCAPSULE_MAP_FILES`` environment variable decides (default off). See
    :mod:`modelcapsule.core.exact_bytes`."""


DEFAULT_LIMITS = Limits()
