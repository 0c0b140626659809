"""Re-train a capsule from its stored training script and compare the result with the original.

``retrain(old)`` reads the script stored in the capsule (or takes the one given), runs it in the current
environment with its own ``modelcapsule.save`` redirected to the new path, then builds a
:class:`~modelcapsule.reproduce.compare.RetrainReport`: library versions then and now, training-data
fingerprint, each metric against its saved range, and how many golden-sample rows the new model predicts
as the old one did.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.container import open_capsule
from ..core.manifest import Manifest
from ..errors import CapsuleError, CapsuleFormatError
from .compare import (
    DEFAULT_TOLERANCE,
    Agreement,
    RetrainReport,
    compare_data,
    compare_metrics,
    compare_outputs,
    compare_packages,
)
from .runner import ScriptFailedError, run_script

__all__ = ["ScriptNotTrustedError", "default_output", "retrain", "stored_script"]

SOURCE_MEMBER = "provenance/source.py"


class ScriptNotTrustedError(CapsuleError, PermissionError):
    """Running the training script stored in a capsule was not explicitly allowed.

    The script is Python code from the capsule's author; running it is running their code with your
    permissions. Nothing was run.
    """

    def __init__(self, path: str, name: str, text: str) -> None:
        self.sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        super().__init__(
            f"{path} holds a training script ({name}, {len(text.splitlines())} lines, sha256 "
            f"{self.sha256[:16]}…) that would run as Python code with your permissions. Nothing was run. "
            f"Read it first (`capsule retrain {path} --show-script`); if you trust it, pass --trust-script "
            "(trust_script=True), or pass your own copy with --script FILE."
        )


def default_output(old: Path) -> Path:
    """``iris.capsule`` → ``iris.retrained.capsule`` beside it (``model_dir`` → ``model_dir.retrained``)."""
    if old.suffix:
        return old.with_name(f"{old.stem}.retrained{old.suffix}")
    return old.with_name(f"{old.name}.retrained")


def stored_script(path: str | os.PathLike[str]) -> tuple[str, str]:
    """The training script stored in a capsule, as ``(file name, text)``; its member's hash is checked.

    Raises :class:`CapsuleFormatError` when the capsule holds no script (saved with ``source=False``, or
    by a script that could not be found), saying to pass one with ``--script``.
    """
    with open_capsule(path) as reader:
        source = reader.manifest.provenance.get("source") or {}
        if not isinstance(source, Mapping):
            source = {}
        name = _script_name(source.get("path"))
        member = source.get("member")
        if not isinstance(member, str) and SOURCE_MEMBER in reader.manifest.files:
            member = SOURCE_MEMBER
        if isinstance(member, str) and member in reader.manifest.files:
            reader.check_hashes([member])
            try:
                return name, reader.read(member).decode("utf-8")
            except UnicodeDecodeError:
                raise CapsuleFormatError(
                    f"the stored training script {member!r} is not UTF-8 text."
                ) from None
        text = source.get("text")
        if isinstance(text, str) and text:
            return name, text
    raise CapsuleFormatError(
        f"{path} does not hold its training script (it was saved with source=False, or from an interactive "
        "session). Pass the script with --script FILE."
    )


def _script_name(path: Any) -> str:
    """A safe file name for the script, keeping the saved base name when it looks like one."""
    base = re.split(r"[\\/]", path)[-1] if isinstance(path, str) else ""
    return base if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}\.py", base) else "train.py"


def retrain(
    old: str | os.PathLike[str],
    new: str | os.PathLike[str] | None = None,
    *,
    script: str | os.PathLike[str] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    cwd: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    trusted: tuple[str, ...] = (),
    trust_script: bool = False,
    timeout: float | None = None,
    on_line: Callable[[str], None] | None = None,
) -> RetrainReport:
    """Re-run the training script of ``old`` and compare the capsule it saves (at ``new``) with ``old``.

    The script is ``script`` when given, else the one stored in ``old``, which runs only with
    ``trust_script=True`` (it is code from the capsule's author: :class:`ScriptNotTrustedError`).
    """
    old_path = Path(old)
    with open_capsule(old_path) as reader:
        then = reader.manifest
    new_path = Path(new) if new is not None else default_output(old_path)
    if new_path.resolve() == old_path.resolve():
        raise ValueError("the re-trained capsule must go to a new path, not over the original.")
    if os.path.lexists(new_path) and not overwrite:
        raise FileExistsError(f"{new_path} already exists; pass --overwrite or choose another -o path.")
    if script is not None:
        script_path = Path(script).resolve()
        if not script_path.is_file():
            raise FileNotFoundError(f"no training script at {script_path}")
        stored = None
    else:
        stored = stored_script(old_path)
        if not trust_script:
            raise ScriptNotTrustedError(str(old_path), *stored)
    if os.path.lexists(new_path):
        _remove(new_path)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="capsule-retrain-") as tmp:
        if stored is not None:
            script_path = Path(tmp) / stored[0]
            script_path.write_text(stored[1], encoding="utf-8")
        run = run_script(script_path, new_path, cwd=Path(cwd) if cwd else None, on_line=on_line,
                         timeout=timeout)
    if not new_path.exists():
        raise ScriptFailedError(
            f"{script_path.name} finished but saved no capsule: it must call modelcapsule.save(...) (its "
            f"target is redirected to {new_path}).",
            run.output,
        )
    with open_capsule(new_path) as reader:
        now = reader.manifest
    agreement = _agreement(old_path, new_path, then, trusted, notes)
    return RetrainReport(
        name=then.name,
        old=str(old_path),
        new=str(new_path),
        script=str(script) if script is not None else f"{script_path.name} (stored in the capsule)",
        seconds=run.seconds,
        tolerance=tolerance,
        python=(_python(then), _python(now)),
        packages=compare_packages(_packages(then), _packages(now)),
        data=compare_data(_section(then.provenance, "training_data"),
                          _section(now.provenance, "training_data")),
        metrics=compare_metrics(_section(then.provenance, "metrics"), _section(now.provenance, "metrics"),
                                tolerance),
        agreement=agreement,
        notes=notes,
    )


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _section(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


def _packages(manifest: Manifest) -> dict[str, Any]:
    return _section(manifest.environment, "packages")


def _python(manifest: Manifest) -> str | None:
    value = manifest.environment.get("python")
    return value if isinstance(value, str) else None


def _agreement(old: Path, new: Path, then: Manifest, trusted: tuple[str, ...],
               notes: list[str]) -> list[Agreement]:
    """Predict the old capsule's golden-sample inputs with the new model; compare with the saved outputs."""
    from .golden import predict_with, saved_sample

    sample = saved_sample(old, then)
    if sample is None:
        notes.append("the original capsule has no golden sample, so predictions were not compared.")
        return []
    inputs, outputs = sample
    produced, failures = predict_with(new, inputs, outputs, trusted)
    result = []
    for method, saved in outputs.items():
        if method in failures:
            notes.append(f"{method}() of the re-trained model fails on the saved golden-sample inputs "
                         f"({failures[method]}); no row agrees.")
            result.append(Agreement(method, int(np.asarray(saved).shape[0]) if np.ndim(saved) else 1, 0))
            continue
        result.append(compare_outputs(method, saved, produced[method]))
    return result
