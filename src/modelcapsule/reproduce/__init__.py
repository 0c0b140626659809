"""Reproduce a capsule: re-create its environment, containerize it, re-train it and compare.

- :mod:`.pins` reads the pinned packages from a manifest, strictly (they end up in files pip executes);
- :mod:`.lockfiles` renders them as ``requirements.txt``, ``pylock.toml`` or ``environment.yml``;
- :mod:`.venv` builds a virtual environment with exactly those versions and proves the capsule loads there;
- :mod:`.docker` writes a Docker build context that serves the capsule;
- :mod:`.runner` runs a training script, its saves sent to the new path through
  :mod:`modelcapsule.core.save_redirect`; :mod:`.retrain` and :mod:`.compare` re-train and judge the result.

Nothing under the CLI imports this package: it sits above the verbs, beside serving and batch.
"""
