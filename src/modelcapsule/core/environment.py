"""Capture the environment a model was saved in, and compare it with the one loading it.

Versions are recorded per *distribution* (``scikit-learn``, not ``sklearn``) for every package the
model's types come from, plus numpy, scipy and joblib; ``requirements`` pins their whole dependency
closure so the environment can be re-created.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import PackageDrift

__all__ = ["canonical_name", "capture_environment", "compare_environment", "distribution_folders",
           "distributions_for_modules", "installed_distribution", "installed_version"]

ALWAYS_RECORDED = ("numpy", "scipy", "joblib")


@cache
def _module_to_dists() -> Mapping[str, list[str]]:
    from importlib import metadata

    return metadata.packages_distributions()


def canonical_name(name: str) -> str:
    """A distribution name as PEP 503 normalizes it (``Scikit_Learn`` → ``scikit-learn``): the one way
    every part of the package compares distribution names."""
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def _dist_infos() -> dict[str, tuple[str, str]]:
    """``{canonical name: (version, dist-info folder)}`` from the ``*.dist-info`` folder names on
    ``sys.path``, first one wins (as for imports). Reading folder names takes a millisecond where
    ``importlib.metadata`` takes ten per package, and load calls this for every package the manifest lists."""
    found: dict[str, tuple[str, str]] = {}
    for folder, name, dist in distribution_folders():
        if name.endswith(".dist-info"):
            version = name.removesuffix(".dist-info").partition("-")[2]
            if version:
                found.setdefault(dist, (version, os.path.join(folder, name)))
    return found


def distribution_folders() -> Iterator[tuple[str, str, str]]:
    """``(directory, folder name, canonical distribution name)`` of every ``*.dist-info`` and
    ``*.egg-info`` folder on ``sys.path``, in path order and each directory's listing order: the order
    ``importlib.metadata`` finds installed distributions in (those inside zip files aside)."""
    for entry in sys.path:
        directory = entry or "."
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if name.lower().endswith((".dist-info", ".egg-info")):
                yield directory, name, canonical_name(name.rsplit(".", 1)[0].partition("-")[0])


def installed_distribution(dist: str) -> tuple[str, Path] | None:
    """``(version, dist-info folder)`` of distribution ``dist`` as imports would find it, or None."""
    found = _dist_infos().get(canonical_name(dist))
    return None if found is None else (found[0], Path(found[1]))


def installed_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or None."""
    found = _dist_infos().get(canonical_name(dist))
    if found is not None:
        return found[0]
    from importlib import metadata  # ~10 ms of imports, which loading a capsule mostly does without

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def distributions_for_modules(modules: Iterable[str]) -> list[str]:
    """Map top-level module names (``sklearn``) to installed distribution names (``scikit-learn``)."""
    mapping = _module_to_dists()
    out: dict[str, None] = {}
    for module in modules:
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top == "builtins":
            continue
        for dist in mapping.get(top, []):
            out.setdefault(dist, None)
    return list(out)


def _requirement_closure(roots: Iterable[str]) -> dict[str, str]:
    """Installed versions of ``roots`` and everything they require (extras and markers evaluated)."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    seen: dict[str, str] = {}
    queue = list(roots)
    while queue:
        name = queue.pop()
        key = canonical_name(name)
        if key in {canonical_name(k) for k in seen}:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[dist.metadata["Name"]] = dist.version
        for raw in dist.requires or []:
            try:
                req = Requirement(raw)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            queue.append(req.name)
    return seen


def capture_environment(modules: Iterable[str]) -> dict[str, Any]:
    """The manifest's ``environment`` section for a model whose types come from ``modules``."""
    dists = distributions_for_modules(modules)
    for always in ALWAYS_RECORDED:
        if always not in dists and installed_version(always) is not None:
            dists.append(always)
    packages = {d: v for d in dists if (v := installed_version(d)) is not None}
    closure = _requirement_closure(packages)
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.system(),
        "machine": platform.machine(),
        "packages": dict(sorted(packages.items())),
        "requirements": sorted(f"{name}=={version}" for name, version in closure.items()),
    }


def compare_environment(saved: Mapping[str, Any]) -> list[PackageDrift]:
    """Every package (and Python itself, by minor version) whose installed version differs from ``saved``."""
    drifts: list[PackageDrift] = []
    saved_python = str(saved.get("python", ""))
    here = platform.python_version()
    if saved_python and saved_python.split(".")[:2] != here.split(".")[:2]:
        drifts.append(PackageDrift("python", saved_python, here))
    for name, version in (saved.get("packages") or {}).items():
        installed = installed_version(str(name))
        if installed != version:
            drifts.append(PackageDrift(str(name), str(version), installed))
    return drifts
