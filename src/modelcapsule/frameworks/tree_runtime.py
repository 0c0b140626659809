"""All the trees of an ensemble walked at once with numpy, in the arithmetic order of scikit-learn.

scikit-learn walks an ensemble one tree at a time (and a forest through joblib, one task per tree),
so a call on the few rows a server answers costs mostly per-tree overhead, not traversal. Here every
tree's nodes are concatenated into flat arrays and all ``rows × trees`` walks advance together, one
tree level per step (a handful of numpy operations each), which finishes in ``depth`` steps whatever
the number of trees.

The results are the same bits as scikit-learn's because every operation is the same one:

- the split test is ``x <= threshold`` on the value scikit-learn compares (forests and
  ``GradientBoosting*`` cast inputs to float32, ``HistGradientBoosting*`` keeps float64; the float32
  value widened to float64 compares exactly as scikit-learn's C code does), and a NaN goes where the
  node's ``missing_go_to_left`` says;
- the leaf values are added tree after tree, starting from the same initial value, with
  ``np.add.accumulate`` (a running sum: strictly sequential, never reassociated), then finished by
  the same operation scikit-learn applies (the forest's mean, the boosting's scaled sum).

:mod:`modelcapsule.frameworks.sklearn_forest` proves it on probe rows before serving anything with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FlatTrees", "TreeArrays"]

_CHUNK_ELEMENTS = 1 << 18
"""Rows are walked in chunks of about this many ``row × tree`` walks, to bound the temporaries."""

_COMPACT_EVERY = 6
"""Every this many levels, walks that reached a leaf are dropped from the working set."""


@dataclass(frozen=True)
class TreeArrays:
    """One tree: children (-1 at leaves), split feature and threshold, NaN direction, leaf values."""

    left: np.ndarray[Any, Any]
    right: np.ndarray[Any, Any]
    feature: np.ndarray[Any, Any]
    threshold: np.ndarray[Any, Any]
    missing_left: np.ndarray[Any, Any]
    value: np.ndarray[Any, Any]  # (n_nodes, n_values) float64


class FlatTrees:
    """Trees concatenated into flat arrays; :meth:`leaf_values` walks all of them at once."""

    def __init__(self, trees: Sequence[TreeArrays]) -> None:
        if not trees:
            raise ValueError("an ensemble needs at least one tree")
        sizes = np.array([len(t.left) for t in trees], dtype=np.intp)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        n = int(sizes.sum())
        children = np.empty((n, 2), dtype=np.intp)
        feature = np.zeros(n, dtype=np.intp)
        threshold = np.empty(n, dtype=np.float64)
        missing_left = np.zeros(n, dtype=bool)
        depth = 0
        for tree, start in zip(trees, offsets, strict=True):
            stop = start + len(tree.left)
            own = np.arange(start, stop, dtype=np.intp)
            leaf = np.asarray(tree.left) < 0
            # a leaf's children are itself, so a walk that reached it stays there
            children[start:stop, 0] = np.where(leaf, own, np.asarray(tree.left, dtype=np.intp) + start)
            children[start:stop, 1] = np.where(leaf, own, np.asarray(tree.right, dtype=np.intp) + start)
            feature[start:stop] = np.where(leaf, 0, tree.feature)
            threshold[start:stop] = np.where(leaf, np.inf, tree.threshold)
            missing_left[start:stop] = np.asarray(tree.missing_left, dtype=bool) & ~leaf
            depth = max(depth, _depth(np.asarray(tree.left), np.asarray(tree.right)))
        value = np.concatenate([np.asarray(t.value, dtype=np.float64) for t in trees])
        self._build(offsets, children, feature, threshold, missing_left, value, depth)

    @classmethod
    def from_arrays(cls, roots: np.ndarray[Any, Any], children: np.ndarray[Any, Any],
                    feature: np.ndarray[Any, Any], threshold: np.ndarray[Any, Any],
                    missing_left: np.ndarray[Any, Any], value: np.ndarray[Any, Any],
                    max_depth: int) -> FlatTrees:
        """Trees already concatenated: ``roots`` (each tree's first node), ``children`` ``(n, 2)`` global
        node indices (-1 at leaves), and the per-node arrays. The caller has checked them (every child
        inside the array and after its parent: see :mod:`.tree_store`); the depth is measured here and
        ``ValueError`` raised past ``max_depth``, which bounds the work of every walk."""
        n = len(children)
        own = np.arange(n, dtype=np.intp)
        leaf = children[:, 0] < 0
        looped = np.where(leaf[:, None], own[:, None], children).astype(np.intp)
        depth = _depth_all(np.asarray(roots, dtype=np.intp), looped[:, 0], looped[:, 1], leaf, max_depth)
        self = cls.__new__(cls)
        self._build(np.asarray(roots, dtype=np.intp), looped, np.where(leaf, 0, feature).astype(np.intp),
                    np.where(leaf, np.inf, threshold).astype(np.float64),
                    np.asarray(missing_left, dtype=bool) & ~leaf, np.asarray(value, dtype=np.float64), depth)
        return self

    def _build(self, offsets: np.ndarray[Any, Any], children: np.ndarray[Any, Any], feature: np.ndarray[Any, Any],
               threshold: np.ndarray[Any, Any], missing_left: np.ndarray[Any, Any], value: np.ndarray[Any, Any],
               depth: int) -> None:
        # Walks hold ``2 * node``: the child is then ``children[2 * node + goes_right]`` without a
        # multiplication per level, and the per-node arrays are stored twice over to be read at 2 * node.
        self.n_trees = len(offsets)
        self.depth = depth
        self.roots = 2 * offsets
        self.children = 2 * children.reshape(-1)
        self.feature = np.repeat(feature, 2)
        self.threshold = np.repeat(threshold, 2)
        self.missing_left = np.repeat(missing_left, 2)
        self.value = np.ascontiguousarray(value)
        self.n_values = self.value.shape[1]

    @property
    def nbytes(self) -> int:
        """Memory held by the flat arrays."""
        return sum(a.nbytes for a in (self.children, self.feature, self.threshold,
                                      self.missing_left, self.value, self.roots))

    def split_nodes(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Feature and threshold of every split node (for probes)."""
        inner = self.children[::2] != 2 * np.arange(len(self.feature) // 2)  # a leaf is its own child
        return self.feature[::2][inner], self.threshold[::2][inner]

    def leaves(self, X: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The leaf each row reaches in each tree: ``(n_rows, n_trees)`` global node indices.

        ``X`` is a C-contiguous float64 array holding exactly the values scikit-learn compares.
        """
        n_rows, n_features = X.shape
        flat_x = X.reshape(-1)
        node = np.broadcast_to(self.roots, (n_rows, self.n_trees)).reshape(-1).copy()
        base = np.repeat(np.arange(n_rows, dtype=np.intp) * n_features, self.n_trees)
        check_nan = bool(np.isnan(flat_x).any())
        out: np.ndarray[Any, Any] | None = None
        where = np.arange(node.size, dtype=np.intp)  # positions of the walks still in ``node``
        for level in range(self.depth):
            at = self.feature.take(node)
            at += base
            x = flat_x.take(at)
            threshold = self.threshold.take(node)
            # NaN goes where the node says; ``x > t`` alone would send it left
            right = (~((x <= threshold) | (np.isnan(x) & self.missing_left.take(node))) if check_nan
                     else x > threshold)
            node += right
            node = self.children.take(node)
            if (level + 1) % _COMPACT_EVERY == 0 and level + 1 < self.depth:
                going = self.children.take(node) != node  # not yet at a leaf
                if out is None:
                    out = node.copy()
                else:
                    out[where] = node
                if not going.all():
                    node, base, where = node[going], base[going], where[going]
                    if node.size == 0:
                        break
        if out is None:
            out = node
        else:
            out[where] = node
        return (out // 2).reshape(n_rows, self.n_trees)

    def leaf_values(self, X: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The value of each tree's leaf for each row: ``(n_trees, n_rows, n_values)``."""
        return np.ascontiguousarray(self.value[self.leaves(X).T])

    def running_sum(self, X: np.ndarray[Any, Any], initial: np.ndarray[Any, Any],
                    scale: float | None = None, per_stage: int = 1) -> np.ndarray[Any, Any]:
        """``initial`` plus each tree's leaf value (times ``scale``), added tree after tree.

        Trees come in stages of ``per_stage`` (boosting: one tree per class and iteration); tree ``k``
        of each stage adds to column ``k``. ``initial`` is ``(n_rows, per_stage * n_values)``. Rows
        are walked in chunks, to bound the temporaries.
        """
        n_rows = X.shape[0]
        stages = self.n_trees // per_stage
        width = per_stage * self.n_values
        step = max(1, _CHUNK_ELEMENTS // max(1, self.n_trees))
        out = np.empty((n_rows, width), dtype=np.float64)
        for start in range(0, n_rows, step):
            stop = min(n_rows, start + step)
            values = self.leaf_values(X[start:stop])
            if scale is not None:
                values *= scale
            if per_stage > 1:
                values = values.reshape(stages, per_stage, stop - start, self.n_values)
                values = values.transpose(0, 2, 1, 3).reshape(stages, stop - start, width)
            terms = np.concatenate([np.asarray(initial[start:stop], dtype=np.float64)[None], values])
            out[start:stop] = np.add.accumulate(terms, axis=0)[-1]
        return out


def _depth(left: np.ndarray[Any, Any], right: np.ndarray[Any, Any]) -> int:
    """Number of splits on the longest root-to-leaf path (0 for a single leaf)."""
    depth, frontier = 0, np.zeros(1, dtype=np.intp)
    while True:
        inner = frontier[left[frontier] >= 0]
        if inner.size == 0:
            return depth
        frontier = np.concatenate([left[inner], right[inner]]).astype(np.intp)
        depth += 1


def _depth_all(roots: np.ndarray[Any, Any], left: np.ndarray[Any, Any], right: np.ndarray[Any, Any],
               leaf: np.ndarray[Any, Any], max_depth: int) -> int:
    """The deepest tree's number of splits, all trees walked level by level together; ``ValueError``
    beyond ``max_depth`` levels (so a hostile chain costs at most that many steps)."""
    depth, frontier = 0, roots
    while True:
        inner = frontier[~leaf[frontier]]
        if inner.size == 0:
            return depth
        if depth >= max_depth:
            raise ValueError(f"a tree is deeper than {max_depth} levels")
        frontier = np.concatenate([left[inner], right[inner]])
        depth += 1
