"""Reproduce a capsule: re-create its environment, containerize it, re-train it and compare.

- :mod:`.pins` reads the pinned packages from a manifest, strictly (they end up in files pip executes);
- :mod:`.lockfiles` renders them as ``requirements.txt``, ``pylock.toml`` or ``environment.yml``;
- :mod:`.venv` builds a virtual environment with exactly those versions and proves the capsule loads there;
- :mod:`.docker` writes a Docker build context that serves the capsule;
- :mod:`.redirect` lets ``modelcapsule.save`` write to another path while a script is re-run;
- :mod:`.runner` runs a training script; :mod:`.retrain` and :mod:`.compare` re-train and judge the result.

This package imports nothing heavy on its own: ``modelcapsule.save`` imports :mod:`.redirect` from it.
"""
