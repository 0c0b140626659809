"""A tree ensemble as plain arrays stored in the capsule, read back and checked without scikit-learn.

At save time (:mod:`.tree_export`) a supported scikit-learn ensemble is written as a few ``.npy``
members under ``trees/`` plus the manifest's ``trees`` section, which says how to finish the sum of
the leaves the way the model does. At load, :func:`read_stored_trees` reads those members with the
package's strict NPY reader (plain dtypes only, never pickle), checks every array the way
:mod:`modelcapsule.security.state_checks` checks scikit-learn's own trees, and builds
:class:`~.tree_runtime.FlatTrees` from them. The members come from an untrusted file: anything
inconsistent is a :class:`~modelcapsule.errors.CapsuleFormatError`, never an ``IndexError``, a hang or
an out-of-bounds read later.

Members (``n`` nodes over all trees, concatenated tree after tree; indices are global):

- ``trees/roots.npy`` int64 ``(n_trees,)``: each tree's first node (0, then strictly increasing);
- ``trees/children.npy`` int64 ``(n, 2)``: left and right child, ``-1`` for both at a leaf; a child
  lies inside its own tree, after its parent, and has no other parent;
- ``trees/feature.npy`` int64 ``(n,)``: the column a split node compares (``0 <= f < n_features``);
- ``trees/threshold.npy`` float64 ``(n,)``: goes left when ``x <= threshold``;
- ``trees/missing_left.npy`` bool ``(n,)``: where a NaN goes at a split node;
- ``trees/value.npy`` float64 ``(n, n_values)``: what a leaf adds;
- ``trees/classes.npy`` (classifiers): the labels, plain dtype (text labels the model holds as Python
  strings are stored as text and given back as objects when the section says ``object_labels``);
- ``trees/baseline.npy`` float64 ``(per_stage,)`` (boosting): the raw prediction before any tree.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.container import Limits
from ..core.manifest_schema import TREE_LAYOUT
from ..core.npy import NpyError, array_from_npy
from ..errors import CapsuleFormatError, LimitExceededError
from .sklearn_trees import MAX_FLAT_NODES
from .tree_runtime import FlatTrees

__all__ = ["LAYOUT", "MAX_FLAT_DEPTH", "MEMBERS", "StoredTrees", "check_arrays",
           "encode_arrays", "read_stored_trees"]

LAYOUT = TREE_LAYOUT
"""Version of the stored layout this release writes and reads (the section's ``layout``)."""

MAX_FLAT_DEPTH = 1024
"""Deepest tree stored or read: each level is one step of every walk, and a hostile chain stops here."""

MAX_NODES = MAX_FLAT_NODES
"""Most nodes stored or read: the cap of the flat walk (:data:`~.sklearn_trees.MAX_FLAT_NODES`)."""

MEMBERS = ("roots", "children", "feature", "threshold", "missing_left", "value", "classes", "baseline")
_PREFIX = "trees/"


@dataclass(frozen=True)
class StoredTrees:
    """The checked arrays and the finish the manifest's ``trees`` section describes."""

    family: str
    classifier: bool
    n_features: int
    input_dtype: np.dtype[Any]
    allow_nan: bool
    allow_inf: bool
    n_outputs: int
    per_stage: int
    link: str
    learning_rate: float
    methods: tuple[str, ...]
    feature_names: tuple[str, ...] | None
    flat: FlatTrees
    classes: np.ndarray[Any, Any] | None
    baseline: np.ndarray[Any, Any] | None


def member_name(key: str) -> str:
    return f"{_PREFIX}{key}.npy"


def encode_arrays(arrays: Mapping[str, np.ndarray[Any, Any]]) -> dict[str, bytes]:
    """``{member name: NPY bytes}`` for the arrays (never pickled: ``allow_pickle=False``)."""
    out: dict[str, bytes] = {}
    for key, array in arrays.items():
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        out[member_name(key)] = buffer.getvalue()
    return out


def _bad(problem: str) -> CapsuleFormatError:
    return CapsuleFormatError(f"the capsule's stored trees: {problem}; the capsule is corrupt or hostile. "
                              "Serve it with runtime='python' only if you trust its source.")


def _array(arrays: Mapping[str, Any], key: str, kinds: str, ndim: int) -> np.ndarray[Any, Any]:
    value = arrays.get(key)
    if not isinstance(value, np.ndarray):
        raise _bad(f"{member_name(key)} is missing")
    if value.dtype.kind not in kinds or value.ndim != ndim:
        raise _bad(f"{member_name(key)} is {value.ndim}-D {value.dtype}, not a {ndim}-D array of kind {kinds!r}")
    return value


def check_arrays(section: Mapping[str, Any], arrays: Mapping[str, Any], limits: Limits) -> StoredTrees:
    """The stored trees, after checking every array against the section and each other (module doc).

    Raises :class:`CapsuleFormatError` (or :class:`LimitExceededError`) for anything inconsistent."""
    family, classifier = section["family"], bool(section["classifier"])
    n_features, per_stage, n_outputs = int(section["n_features"]), int(section["per_stage"]), int(section["n_outputs"])
    roots = _array(arrays, "roots", "i", 1).astype(np.intp)
    children = _array(arrays, "children", "i", 2).astype(np.intp)
    feature = _array(arrays, "feature", "iu", 1)
    threshold = _array(arrays, "threshold", "f", 1)
    missing_left = _array(arrays, "missing_left", "b", 1)
    value = _array(arrays, "value", "f", 2)
    n = len(children)
    if n > min(MAX_NODES, limits.max_array_elements):
        raise LimitExceededError("the number of stored tree nodes", n, min(MAX_NODES, limits.max_array_elements),
                                 "max_array_elements")
    if n == 0 or children.shape != (n, 2) or not (
            len(feature) == len(threshold) == len(missing_left) == len(value) == n):
        raise _bad(f"the node arrays do not all have the {n} nodes of children.npy")
    n_trees = len(roots)
    if n_trees == 0 or n_trees != int(section["n_trees"]) or roots[0] != 0 or np.any(np.diff(roots) <= 0) \
            or roots[-1] >= n:
        raise _bad("roots.npy must start at 0, increase strictly, stay inside the nodes and count n_trees")
    ends = np.append(roots[1:], n)
    end = np.repeat(ends, np.diff(np.append(roots, n)))  # one past the last node of each node's tree
    position = np.arange(n, dtype=np.intp)
    left, right = children[:, 0], children[:, 1]
    leaf = (left == -1) & (right == -1)
    inner = (left > position) & (right > position) & (left < end) & (right < end) & (left != right)
    wide = feature.astype(np.int64) if feature.dtype.kind == "i" else feature.astype(np.uint64).astype(np.int64)
    inner &= (wide >= 0) & (wide < n_features)
    if not bool(np.all(leaf | inner)):
        k = int(np.flatnonzero(~(leaf | inner))[0])
        raise _bad(f"node {k} has children {int(left[k])} and {int(right[k])} and feature {int(wide[k])}: a child "
                   "outside its tree or not after its node (a cycle), or a feature outside the "
                   f"{n_features} input columns")
    referenced = np.concatenate([left[~leaf], right[~leaf], roots])
    if np.bincount(referenced, minlength=n).max(initial=0) > 1:
        raise _bad("a node has two parents (or a root has one): every node must belong to one tree")
    n_values = value.shape[1]
    classes = baseline = None
    if classifier:
        classes = _array(arrays, "classes", "biuUS", 1)
        if len(classes) == 0:
            raise _bad("classes.npy is empty")
        if section.get("object_labels"):
            if classes.dtype.kind != "U":
                raise _bad("object labels must be stored as text")
            classes = classes.astype(object)  # Python strings, as the model's own classes_ holds them
    if family == "forest":
        expected_values = len(classes) if classes is not None else n_outputs
        if per_stage != 1 or n_values != expected_values or (classifier and n_outputs != 1):
            raise _bad(f"value.npy has {n_values} values a leaf for a forest of {n_outputs} output(s)")
    else:
        baseline = _array(arrays, "baseline", "f", 1).astype(np.float64)
        wanted_stage = 1 if not classifier or classes is None or len(classes) == 2 else len(classes)
        if classifier and (classes is None or len(classes) < 2):
            raise _bad("a boosting classifier needs at least two classes")
        if n_values != 1 or per_stage != wanted_stage or len(baseline) != per_stage or n_trees % per_stage:
            raise _bad(f"{n_trees} trees of {n_values} value(s) in stages of {per_stage} with "
                       f"{len(baseline)} baseline value(s) do not make a boosting of this kind")
    computed = ("predict", "predict_proba", "decision_function") if classifier and family != "forest" else \
        ("predict", "predict_proba") if classifier else ("predict",)
    if not set(section["methods"]) <= set(computed):
        raise _bad(f"the section claims {section['methods']}, but a {family} computes only {list(computed)}")
    try:
        flat = FlatTrees.from_arrays(roots, children, feature, threshold, missing_left, value, MAX_FLAT_DEPTH)
    except ValueError as exc:
        raise _bad(str(exc)) from None
    return StoredTrees(family=family, classifier=classifier, n_features=n_features,
                       input_dtype=np.dtype(section["input_dtype"]), allow_nan=bool(section["allow_nan"]),
                       allow_inf=bool(section["allow_inf"]), n_outputs=n_outputs, per_stage=per_stage,
                       link=str(section.get("link", "identity")),
                       learning_rate=float(section.get("learning_rate", 1.0)),
                       methods=tuple(section["methods"]), flat=flat,
                       feature_names=None if section.get("feature_names") is None else tuple(section["feature_names"]),
                       classes=classes, baseline=baseline)


def read_stored_trees(reader: Any, section: Mapping[str, Any], limits: Limits) -> StoredTrees:
    """Read the members the ``trees`` section names (hashes are the caller's: they were checked before)
    and check them (:func:`check_arrays`)."""
    members = section["members"]
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for key, name in members.items():
        if name not in reader:
            raise _bad(f"the manifest names {name!r}, which the capsule does not hold")
        try:
            arrays[key] = array_from_npy(reader.view(name), max_bytes=limits.max_member_size)
        except NpyError as exc:
            raise _bad(f"{name} is not a plain NPY array ({exc})") from None
    return check_arrays(section, arrays, limits)
