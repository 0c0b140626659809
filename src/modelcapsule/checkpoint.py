"""Training checkpoints for PyTorch, without pickle: resume training where it stopped.

A checkpoint is one safetensors file. Every tensor (model weights, optimizer moments, scheduler tensors)
is a safetensors tensor; everything else (epoch, step, loss, hyper-parameters, your ``extra`` values) is
JSON in the file's metadata (see :mod:`modelcapsule.frameworks.torch_tree`). Loading it parses data only: no class
is imported and no code from the file runs, so checkpoints can be shared like weights.

The usual training loop::

    ckpt = mc.load_checkpoint("last.ckpt", model=model, optimizer=optimizer)   # restores both in place
    for epoch in range(ckpt.epoch + 1, n_epochs):
        loss = train_one_epoch(model, optimizer)
        mc.save_checkpoint("last.ckpt", model=model, optimizer=optimizer, epoch=epoch, loss=loss)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .core.atomic import write_atomic
from .errors import CapsuleFormatError
from .frameworks.torch_tree import flatten, unflatten

__all__ = ["CHECKPOINT_VERSION", "Checkpoint", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_VERSION = 1
"""Version of the checkpoint layout. To bump it: keep a reader for every older version in
:func:`load_checkpoint`, increase this constant, and add a checkpoint written by the previous release to
``tests/data/`` with a test that loads it."""

_KEY = "modelcapsule.checkpoint"


@dataclass
class Checkpoint:
    """What a checkpoint holds. ``model_state`` and ``optimizer_state`` are plain state dicts."""

    model_state: dict[str, Any]
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    epoch: int | None = None
    step: int | None = None
    loss: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: Any,
    optimizer: Any = None,
    scheduler: Any = None,
    epoch: int | None = None,
    step: int | None = None,
    loss: Any = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (a temporary sibling renamed over ``path``) and return its path.

    ``loss`` may be a number or a 0-d tensor; ``extra`` holds anything else made of tensors, numbers,
    strings, lists and dicts (e.g. the RNG state as a tensor, the best validation score).
    """
    import safetensors.torch

    if hasattr(loss, "detach"):
        loss = float(loss.detach())
    tree = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "epoch": epoch,
        "step": step,
        "loss": loss,
        "extra": dict(extra or {}),
    }
    tensors, doc = flatten(tree)
    metadata = {_KEY: json.dumps({"version": CHECKPOINT_VERSION, "tree": doc}, allow_nan=False)}
    data = safetensors.torch.save(tensors, metadata=metadata)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, data)
    return target


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: Any = None,
    optimizer: Any = None,
    scheduler: Any = None,
    device: str | None = None,
) -> Checkpoint:
    """Read a checkpoint; restore ``model``, ``optimizer`` and ``scheduler`` in place when given.

    ``device`` maps the tensors (default: the CPU); the optimizer's state follows its parameters' device.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device=device or "cpu") as fh:
            raw = (fh.metadata() or {}).get(_KEY)
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118 - safe_open has no iterator
    except SafetensorError as exc:
        raise CapsuleFormatError(f"{path} is not a readable checkpoint: {exc}") from exc
    if raw is None:
        raise CapsuleFormatError(
            f"{path} is a safetensors file but not a modelcapsule checkpoint (no {_KEY!r} metadata)"
        )
    try:
        header = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CapsuleFormatError(f"{path}: the checkpoint metadata is not valid JSON ({exc})") from exc
    if not isinstance(header, dict) or not isinstance(header.get("version"), int):
        raise CapsuleFormatError(f"{path}: the checkpoint metadata has no version")
    if header["version"] > CHECKPOINT_VERSION:
        raise CapsuleFormatError(
            f"{path} was written by a newer modelcapsule (checkpoint version {header['version']}); "
            "upgrade modelcapsule."
        )
    tree = unflatten(header.get("tree"), tensors)
    if not isinstance(tree, dict) or not isinstance(tree.get("model"), dict):
        raise CapsuleFormatError(f"{path}: the checkpoint holds no model state")
    ckpt = Checkpoint(
        model_state=tree["model"],
        optimizer_state=tree.get("optimizer"),
        scheduler_state=tree.get("scheduler"),
        epoch=tree.get("epoch"),
        step=tree.get("step"),
        loss=tree.get("loss"),
        extra=tree.get("extra") or {},
    )
    if model is not None:
        model.load_state_dict(ckpt.model_state)
    if optimizer is not None:
        if ckpt.optimizer_state is None:
            raise CapsuleFormatError(f"{path} holds no optimizer state; pass optimizer=None")
        optimizer.load_state_dict(ckpt.optimizer_state)
    if scheduler is not None:
        if ckpt.scheduler_state is None:
            raise CapsuleFormatError(f"{path} holds no scheduler state; pass scheduler=None")
        scheduler.load_state_dict(ckpt.scheduler_state)
    return ckpt
