"""Serving a capsule from its stored flat trees alone: ``load_capsule(path, runtime="flat")``.

The Python model is not loaded (so neither scikit-learn nor SciPy is imported), yet every check a load
runs still runs, in this order:

1. the signature, when a public key is given, and every member's SHA-256, checked by the loader
   (``load._load_from_reader``) as for every runtime that serves without the Python model;
2. the stored arrays are read with the strict NPY reader and checked as scikit-learn's own trees are
   checked after unpickling (:mod:`.tree_store`): a hostile member is a
   :class:`~modelcapsule.errors.CapsuleFormatError`;
3. the golden sample is run through the stored trees and must give the recorded outputs bit for bit
   (:class:`~modelcapsule.errors.VerificationError` otherwise).

Outputs the stored trees do not cover are answered by the Python model, loaded on first use with every
check (:class:`~.predictor.LazyPredictor`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.manifest import Manifest
from ..core.sample import check_inputs, compare_outputs, describe_error, model_inputs, read_sample
from ..errors import CapsuleError, InvalidInputError, VerificationError
from ..types import Predictor, Signature
from .predictor import LazyPredictor
from .tree_predictor import FlatTreePredictor
from .tree_store import LAYOUT, read_stored_trees

__all__ = ["has_stored_trees", "stored_tree_predictor"]


def has_stored_trees(manifest: Manifest) -> bool:
    """Whether the capsule holds stored trees this release can serve (a newer layout is left alone)."""
    section = manifest.trees
    return section is not None and section.get("layout") == LAYOUT and manifest.format_name != "onnx"


def stored_tree_predictor(reader: Any, manifest: Manifest, limits: Any, *, verify: bool,
                          python: Callable[[], Predictor]) -> FlatTreePredictor:
    """The stored trees read and checked (step 2), and with ``verify`` the golden sample reproduced
    through them (step 3); the signature and hashes (step 1) are the caller's to check first (the loader
    and ``mc.verify`` both do). ``python()`` loads the Python predictor if an output they lack is asked for."""
    assert manifest.trees is not None
    stored = read_stored_trees(reader, manifest.trees, limits)
    signature = manifest.signature or Signature((), ())
    predictor = FlatTreePredictor(stored, signature, LazyPredictor(signature, python, "outputs the stored trees lack"))
    if verify and manifest.sample:
        _reproduce_sample(reader, manifest, predictor)
    return predictor


def _reproduce_sample(reader: Any, manifest: Manifest, predictor: FlatTreePredictor) -> None:
    inputs, outputs = read_sample(reader, manifest.sample)
    check_inputs(inputs, manifest.signature)
    covered = [m for m in outputs if m in predictor.methods]
    if not covered:
        return
    try:
        with np.errstate(all="ignore"):  # an altered section may overflow: the comparison below says so
            got = predictor.compute(model_inputs(inputs), covered)
    except (InvalidInputError, CapsuleError) as exc:
        raise VerificationError(covered[0], f"the stored trees refuse the golden sample ({describe_error(exc)})") \
            from exc
    for method in covered:
        why = _bit_difference(outputs[method], got[method])
        if why is not None:
            raise VerificationError(method, f"the stored trees do not reproduce the golden sample bit for bit: {why}")


def _bit_difference(expected: np.ndarray[Any, Any], got: np.ndarray[Any, Any]) -> str | None:
    """None when ``got`` holds the very bits recorded (floats compared as bytes: -0.0 is not 0.0)."""
    if expected.dtype.kind == "f":
        if got.dtype != expected.dtype or got.shape != expected.shape:
            return f"{got.dtype} {got.shape} instead of {expected.dtype} {expected.shape}"
        same = np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(expected).tobytes()
        return None if same else (compare_outputs(expected, got, exact=True) or "the values differ in their bits")
    return compare_outputs(expected, got, exact=True)
