"""Post-construction checks on objects the restricted unpickler built from trusted types.

The trust policy decides *which* types a file may build; it cannot decide whether the *state* it gives
them is sane. Several trusted types hand their state to native code that does no bounds checking, so a
file made only of trusted names can still make that code read or write out of bounds, or loop forever:

* a scikit-learn decision tree (``sklearn.tree._tree.Tree``) whose child indices point outside the
  node array, back up the tree (a cycle), or whose split features exceed the input's columns;
* a histogram-gradient-boosting ``TreePredictor`` with the same kinds of indices;
* a KD-tree or ball tree (nearest neighbours) whose index array points outside its data;
* a scipy sparse matrix whose ``indices``/``indptr`` point outside its shape;
* a numpy ``RandomState``/bit generator whose position points outside its key (numpy accepts
  ``pos=10**6`` and then crashes reading past the key).

:func:`validate_model` walks the loaded object graph once, applies the check for every such object it
meets, and enforces :attr:`Limits.max_array_elements` on every array. It raises
:class:`CapsuleFormatError` (or :class:`LimitExceededError`) naming the attribute path of the offending
object, e.g. ``estimators_[3].tree_``. The loader calls it after construction and before the object is
handed back or used (in particular before the golden sample is run).
"""

from __future__ import annotations

import sys
import types
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..core.container import DEFAULT_LIMITS, Limits
from ..errors import CapsuleFormatError, LimitExceededError

__all__ = ["validate_model"]

Check = Callable[[Any, str, "int | None"], None]

_ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None), range, slice, memoryview,
          types.FunctionType, types.BuiltinFunctionType, types.ModuleType, type, np.generic, np.dtype, np.ufunc)
_MAX_OBJECTS = 50_000_000


def _bad(path: str, problem: str) -> CapsuleFormatError:
    return CapsuleFormatError(
        f"{path}: {problem}. The file was built from trusted types but with state that would make native "
        "code read out of bounds; it is corrupt or hostile. Refusing it."
    )


# ------------------------------------------------------------------------------------------- checks


def _check_sklearn_tree(tree: Any, path: str, n_features_in: int | None) -> None:
    """Children must come after their parent and lie inside the node array; splits must use real columns.

    Run on every tree of every load (300 trees in the benchmark forest), so the common case is a few
    whole-array passes; the node named in the error is found only once a check has failed."""
    n = int(tree.node_count)
    left, right, feature = (np.asarray(a) for a in (tree.children_left, tree.children_right, tree.feature))
    if not (left.shape == right.shape == feature.shape == (n,)):
        raise _bad(path, f"its node arrays do not all have node_count={n} entries")
    if n == 0:
        raise _bad(path, "it has no nodes")
    limit = int(tree.n_features)
    if n_features_in is not None:
        limit = min(limit, n_features_in)
    low, high = np.minimum(left, right), np.maximum(left, right)
    leaf = high == -1
    good = (low > _positions(n)) & (high < n)  # an internal node: both children after it, inside the array
    good |= leaf & (low == -1)  # a leaf: both children -1
    good &= leaf | (feature.astype(np.uint64) < limit)  # a negative feature wraps around to a huge one
    if good.all():
        return
    k = int(np.flatnonzero(~good)[0])
    if (left[k] == -1) != (right[k] == -1):
        raise _bad(path, f"node {k} has exactly one child (left {left[k]}, right {right[k]})")
    if left[k] != -1 and not (k < left[k] < n and k < right[k] < n):
        raise _bad(path, f"node {k} points to children {left[k]} and {right[k]}, outside the {n}-node array "
                         "or not after the node itself (a cycle)")
    raise _bad(path, f"node {k} splits on feature {feature[k]}, but the input has {limit} feature(s)")


_ARANGE: list[np.ndarray[Any, np.dtype[np.int64]]] = [np.arange(0, dtype=np.int64)]


def _positions(n: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """``arange(n)`` as a read-only view of one cached array (grown as needed)."""
    if len(_ARANGE[0]) < n:
        cached = np.arange(max(n, 2 * len(_ARANGE[0])), dtype=np.int64)
        cached.flags.writeable = False
        _ARANGE[0] = cached
    return _ARANGE[0][:n]


def _check_hgb_predictor(predictor: Any, path: str, n_features_in: int | None) -> None:
    """The same rules for a histogram-gradient-boosting tree (sklearn's ``TreePredictor``)."""
    nodes = np.asarray(predictor.nodes)
    fields = nodes.dtype.names or ()
    if not {"left", "right", "is_leaf", "feature_idx"} <= set(fields) or nodes.ndim != 1 or nodes.size == 0:
        raise _bad(path, "its node array does not have the fields of a TreePredictor")
    n = nodes.size
    idx = np.arange(n)
    internal = nodes["is_leaf"] == 0
    left, right, feature = nodes["left"].astype(np.int64), nodes["right"].astype(np.int64), nodes["feature_idx"]
    outside = internal & ((left <= idx) | (left >= n) | (right <= idx) | (right >= n))
    if (bad := np.flatnonzero(outside)).size:
        k = int(bad[0])
        raise _bad(path, f"node {k} points to children {left[k]} and {right[k]}, outside the {n}-node array "
                         "or not after the node itself (a cycle)")
    if n_features_in is not None and (bad := np.flatnonzero(internal & ((feature < 0) |
                                                                         (feature >= n_features_in)))).size:
        k = int(bad[0])
        raise _bad(path, f"node {k} splits on feature {feature[k]}, but the input has {n_features_in}")
    if "is_categorical" in fields and "bitset_idx" in fields:
        n_bitsets = len(np.asarray(predictor.raw_left_cat_bitsets))
        categorical = internal & (nodes["is_categorical"] != 0)
        if (bad := np.flatnonzero(categorical & (nodes["bitset_idx"] >= n_bitsets))).size:
            k = int(bad[0])
            raise _bad(path, f"node {k} uses category bitset {nodes['bitset_idx'][k]} of {n_bitsets}")


def _check_binary_tree(tree: Any, path: str, n_features_in: int | None) -> None:
    """KD-tree / ball tree: the index array must permute the data; node ranges must lie inside it."""
    data, idx_array, node_data, _bounds = (np.asarray(a) for a in tree.get_arrays())
    n_samples = data.shape[0] if data.ndim == 2 else -1
    if data.ndim != 2 or idx_array.shape != (n_samples,):
        raise _bad(path, f"its index array has shape {idx_array.shape} for data of shape {data.shape}")
    if idx_array.size and (idx_array.min() < 0 or idx_array.max() >= n_samples):
        raise _bad(path, f"its index array points outside the {n_samples} samples")
    n_nodes = node_data.shape[0] if node_data.ndim == 1 else 0
    if n_nodes == 0 or not {"idx_start", "idx_end", "is_leaf"} <= set(node_data.dtype.names or ()):
        raise _bad(path, "its node array is empty or malformed")
    start, end = node_data["idx_start"], node_data["idx_end"]
    if (bad := np.flatnonzero((start < 0) | (end > n_samples) | (start > end))).size:
        k = int(bad[0])
        raise _bad(path, f"node {k} covers samples [{start[k]}, {end[k]}) outside the {n_samples} samples")
    internal = np.flatnonzero(node_data["is_leaf"] == 0)
    if internal.size and 2 * int(internal.max()) + 2 >= n_nodes:
        raise _bad(path, f"node {int(internal.max())} has children beyond the {n_nodes}-node array")


def _check_sparse(matrix: Any, path: str, n_features_in: int | None) -> None:
    """scipy's own full format check: indices inside the shape, indptr monotonic and consistent."""
    try:
        if hasattr(matrix, "check_format"):
            matrix.check_format(full_check=True)
        elif hasattr(matrix, "_check"):  # COO
            matrix._check()
    except (ValueError, TypeError, IndexError, OverflowError) as exc:
        raise _bad(path, f"the sparse matrix is inconsistent ({exc})") from None


_MT_KEY = 624
_PHILOX_BUFFER = 4


def _check_bit_generator_state(state: Any, path: str) -> None:
    if not isinstance(state, dict):
        raise _bad(path, "its random generator state is not a dict")
    name, inner = state.get("bit_generator"), state.get("state")
    if name == "MT19937" and isinstance(inner, dict):
        key, pos = np.asarray(inner.get("key")), inner.get("pos")
        if key.shape != (_MT_KEY,) or not isinstance(pos, int | np.integer) or not 0 <= int(pos) <= _MT_KEY:
            raise _bad(path, f"its MT19937 state has pos={pos!r} and a key of shape {key.shape}; numpy "
                             f"needs 0 <= pos <= {_MT_KEY} and {_MT_KEY} words")
    if name == "Philox":
        buffer_pos = state.get("buffer_pos")
        if not isinstance(buffer_pos, int | np.integer) or not 0 <= int(buffer_pos) <= _PHILOX_BUFFER:
            raise _bad(path, f"its Philox state has buffer_pos={buffer_pos!r}; numpy needs 0..{_PHILOX_BUFFER}")


def _check_random_state(rs: Any, path: str, n_features_in: int | None) -> None:
    _check_bit_generator_state(rs.get_state(legacy=False), path)


def _check_generator(gen: Any, path: str, n_features_in: int | None) -> None:
    _check_bit_generator_state(gen.bit_generator.state, path)


def _check_bit_generator(bitgen: Any, path: str, n_features_in: int | None) -> None:
    _check_bit_generator_state(bitgen.state, path)


def _checks() -> list[tuple[type, Check]]:
    """The (type, check) table, for the libraries already imported (checking never imports one)."""
    table: list[tuple[type, Check]] = [
        (np.random.RandomState, _check_random_state),
        (np.random.Generator, _check_generator),
        (np.random.BitGenerator, _check_bit_generator),
    ]
    if "sklearn.tree._tree" in sys.modules:
        table.append((sys.modules["sklearn.tree._tree"].Tree, _check_sklearn_tree))
    predictor_module = "sklearn.ensemble._hist_gradient_boosting.predictor"
    if predictor_module in sys.modules:
        table.append((sys.modules[predictor_module].TreePredictor, _check_hgb_predictor))
    if "sklearn.neighbors._kd_tree" in sys.modules:
        table.append((sys.modules["sklearn.neighbors._kd_tree"].KDTree, _check_binary_tree))
    if "sklearn.neighbors._ball_tree" in sys.modules:
        table.append((sys.modules["sklearn.neighbors._ball_tree"].BallTree, _check_binary_tree))
    if "scipy.sparse" in sys.modules:
        sparse = sys.modules["scipy.sparse"]
        table.append((sparse.sparray, _check_sparse))
        table.append((sparse.spmatrix, _check_sparse))
    return table


# -------------------------------------------------------------------------------------------- walking


def _children(obj: Any, path: str) -> Iterator[tuple[Any, str]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield key, f"{path}[{key!r}] (key)"
            yield value, f"{path}[{key!r}]"
    elif isinstance(obj, list | tuple | deque):
        for i, value in enumerate(obj):
            yield value, f"{path}[{i}]"
    elif isinstance(obj, set | frozenset):
        for value in obj:
            yield value, f"{path}{{...}}"
    elif isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            for i, value in enumerate(obj.ravel(order="K")):
                yield value, f"{path}.flat[{i}]"
    else:
        attrs = getattr(obj, "__dict__", None)
        if isinstance(attrs, dict):
            for name, value in attrs.items():
                yield value, f"{path}.{name}"


def validate_model(obj: Any, limits: Limits = DEFAULT_LIMITS, *, source: str = "the file") -> None:
    """Check every object reachable from ``obj`` whose state feeds native code; enforce the array cap.

    Raises :class:`CapsuleFormatError` naming the attribute path of the first inconsistent object, or
    :class:`LimitExceededError` for an array with more than ``limits.max_array_elements`` elements.
    Paths start at ``model`` (the loaded object), e.g. ``model.estimators_[3].tree_``.
    """
    table = _checks()
    seen: set[int] = set()
    todo: list[tuple[Any, str, int | None]] = [(obj, "model", None)]
    while todo:
        current, path, n_features = todo.pop()
        if id(current) in seen or isinstance(current, _ATOMS):
            continue
        seen.add(id(current))
        if len(seen) > _MAX_OBJECTS:
            raise LimitExceededError(f"the number of objects in {source}", len(seen), _MAX_OBJECTS,
                                     "max_array_elements")
        if isinstance(current, np.ndarray) and current.size > limits.max_array_elements:
            raise LimitExceededError(f"the number of elements of {path} in {source} (shape {current.shape})",
                                     current.size, limits.max_array_elements, "max_array_elements")
        for cls, check in table:
            if isinstance(current, cls):
                try:
                    check(current, f"{source}: {path}", n_features)
                except (AttributeError, TypeError, ValueError, IndexError, KeyError, OverflowError) as exc:
                    raise _bad(f"{source}: {path}", f"its state is malformed ({type(exc).__name__}: {exc})") \
                        from None
        attrs = getattr(current, "__dict__", None)
        own = attrs.get("n_features_in_") if isinstance(attrs, dict) else None
        if isinstance(own, int | np.integer) and not isinstance(own, bool):
            n_features = int(own)
        todo.extend((child, child_path, n_features) for child, child_path in _children(current, path))
