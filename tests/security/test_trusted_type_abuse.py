"""Abuse of trusted types: files made only of names the policy admits, whose *state* would make native
code read out of bounds, loop forever or allocate without limit. Each is refused by name after
construction and before the model is used; two subprocess tests show the crash that would follow.
"""

from __future__ import annotations

import pickle
import resource
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hostile_corpus import (
    BUILD,
    build_capsule,
    call,
    data,
    glob,
    integer,
    stream,
    text,
    tup,
)
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

import modelcapsule as mc
from modelcapsule.core.container import Limits
from modelcapsule.errors import CapsuleError, CapsuleFormatError, LimitExceededError

STREAM = "model/model.pkl"
X, Y = load_iris(return_X_y=True)
NEXT_BUFFER = b"\x97"
FALSE, TRUE = b"\x89", b"\x88"


def _tree_with(edit: Callable[[dict[str, Any]], None]) -> DecisionTreeClassifier:
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, Y)
    state = model.tree_.__getstate__()
    state = {**state, "nodes": state["nodes"].copy()}
    edit(state)
    model.tree_.__setstate__(state)  # scikit-learn checks dtypes and shapes here, not indices
    return model


def _set_node(field: str, node: int, value: int) -> Callable[[dict[str, Any]], None]:
    def edit(state: dict[str, Any]) -> None:
        state["nodes"][field][node] = value

    return edit


def _forest_with_bad_tree() -> RandomForestClassifier:
    forest = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, Y)
    bad = _tree_with(_set_node("left_child", 0, 10**9))
    forest.estimators_[3].tree_ = bad.tree_
    return forest


def _hgb_with_bad_child() -> HistGradientBoostingClassifier:
    model = HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(X, Y)
    nodes = model._predictors[1][2].nodes
    internal = np.flatnonzero(nodes["is_leaf"] == 0)
    nodes["right"][internal[0]] = 10**6
    return model


def _knn_with_bad_index(algorithm: str) -> KNeighborsClassifier:
    model = KNeighborsClassifier(algorithm=algorithm).fit(X, Y)
    state = list(model._tree.__getstate__())
    state[1] = state[1].copy()
    state[1][5] = 10**7  # idx_array: which row of the data each slot refers to
    model._tree.__setstate__(tuple(state))
    return model


def _knn_with_bad_node_range() -> KNeighborsClassifier:
    model = KNeighborsClassifier(algorithm="kd_tree").fit(X, Y)
    state = list(model._tree.__getstate__())
    state[2] = state[2].copy()
    state[2]["idx_end"][0] = 10**6  # node_data: the slice of idx_array a node covers
    model._tree.__setstate__(tuple(state))
    return model


def _sparse_coef_out_of_bounds() -> LogisticRegression:
    model = LogisticRegression(max_iter=500).fit(X, Y)
    model.sparsify()
    model.coef_.indices[0] = 10**6
    return model


def _random_state(edit: Callable[[dict[str, Any]], None]) -> DummyClassifier:
    rs = np.random.RandomState(0)
    state = rs.__getstate__()
    state = {**state, "state": dict(state["state"])}
    edit(state)
    rs.__setstate__(state)  # numpy accepts pos outside the key; drawing from it then crashes
    return DummyClassifier(strategy="stratified", random_state=rs).fit(X, Y)


def _philox_negative_position() -> Any:
    gen = np.random.Generator(np.random.Philox(1))
    state = gen.bit_generator.state
    state["buffer_pos"] = -(10**9)
    gen.bit_generator.state = state
    return {"model": DummyClassifier().fit(X, Y), "rng": gen}


def pickled(make: Callable[[], Any]) -> Callable[[Path], dict[str, bytes]]:
    """Members of a capsule holding ``make()`` pickled (protocol 5, in-band): trusted names only."""
    def build(tmp: Path) -> dict[str, bytes]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {STREAM: pickle.dumps(make(), protocol=5)}

    return build


def _f8() -> bytes:
    return call(glob("numpy", "dtype"), text("f8"), FALSE, TRUE) + tup(integer(3), text("<"), b"N", b"N", b"N",
                                                                       b"J\xff\xff\xff\xff", b"J\xff\xff\xff\xff",
                                                                       integer(0)) + BUILD


def _frombuffer(shape: tuple[int, ...], buffer: bytes) -> Callable[[Path], dict[str, bytes]]:
    """An out-of-band array (as safepickle writes them) whose declared shape is ``shape``."""
    def build(tmp: Path) -> dict[str, bytes]:
        dims = b"".join(integer(d) for d in shape)
        body = call(glob("numpy._core.numeric", "_frombuffer"), NEXT_BUFFER, _f8(), tup(dims), text("C"))
        return {STREAM: stream(body), "model/buffers/000000.bin": buffer}

    return build


def _setstate_array(shape: tuple[int, ...], raw: bytes) -> Callable[[Path], dict[str, bytes]]:
    """An in-band array (``ndarray.__setstate__``) declaring ``shape`` over ``raw``."""
    def build(tmp: Path) -> dict[str, bytes]:
        dims = b"".join(integer(d) for d in shape)
        empty = call(glob("numpy._core.multiarray", "_reconstruct"), glob("numpy", "ndarray"), tup(integer(0)),
                     data(b"b"))
        return {STREAM: stream(empty + tup(integer(1), tup(dims), _f8(), FALSE, data(raw)) + BUILD)}

    return build


def _ndarray_call(shape: tuple[int, ...]) -> Callable[[Path], dict[str, bytes]]:
    """``numpy.ndarray(shape, "f8")`` called directly: asks for shape's worth of memory."""
    def build(tmp: Path) -> dict[str, bytes]:
        dims = b"".join(integer(d) for d in shape)
        return {STREAM: stream(call(glob("numpy", "ndarray"), tup(dims), text("f8")))}

    return build


# (members builder, limits, exact error, text the message must contain)
CASES: dict[str, tuple[Callable[[Path], dict[str, bytes]], Limits | None, type[CapsuleError], str]] = {
    "tree-child-outside-node-array": (pickled(lambda: _tree_with(_set_node("left_child", 0, 10**9))), None,
                                      CapsuleFormatError, "model.tree_: node 0 points to children 1000000000"),
    "tree-child-cycle": (pickled(lambda: _tree_with(_set_node("right_child", 2, 0))), None,
                         CapsuleFormatError, "not after the node itself (a cycle)"),
    "tree-feature-outside-input": (pickled(lambda: _tree_with(_set_node("feature", 0, 10**6))), None,
                                   CapsuleFormatError, "node 0 splits on feature 1000000, but the input has 4"),
    "tree-node-with-one-child": (pickled(lambda: _tree_with(_set_node("left_child", 0, -1))), None,
                                 CapsuleFormatError, "node 0 has exactly one child"),
    "forest-with-one-bad-tree": (pickled(_forest_with_bad_tree), None, CapsuleFormatError,
                                 "model.estimators_[3].tree_"),
    "hist-gradient-boosting-child-outside": (pickled(_hgb_with_bad_child), None, CapsuleFormatError,
                                             "model._predictors[1][2]"),
    "kd-tree-index-outside-data": (pickled(lambda: _knn_with_bad_index("kd_tree")), None, CapsuleFormatError,
                                   "model._tree: its index array points outside the 150 samples"),
    "ball-tree-index-outside-data": (pickled(lambda: _knn_with_bad_index("ball_tree")), None,
                                     CapsuleFormatError, "its index array points outside"),
    "kd-tree-node-range-outside": (pickled(_knn_with_bad_node_range), None, CapsuleFormatError,
                                   "node 0 covers samples"),
    "sparse-coef-index-outside-shape": (pickled(_sparse_coef_out_of_bounds), None, CapsuleFormatError,
                                        "model.coef_: the sparse matrix is inconsistent"),
    "random-state-pos-outside-key": (pickled(lambda: _random_state(lambda s: s["state"].update(pos=10**6))), None,
                                     CapsuleFormatError, "model.random_state: its MT19937 state has pos=1000000"),
    "random-state-negative-pos": (pickled(lambda: _random_state(lambda s: s["state"].update(pos=-5))), None,
                                  CapsuleFormatError, "pos=-5"),
    "philox-negative-buffer-position": (pickled(_philox_negative_position), None, CapsuleFormatError,
                                        "model['rng']: its Philox state has buffer_pos=-1000000000"),
    "array-shape-larger-than-its-buffer": (_frombuffer((1000,), b"\0" * 24), None, CapsuleFormatError,
                                           "cannot reshape array of size 3 into shape (1000,)"),
    "array-absurd-shape-over-buffer": (_frombuffer((2**31, 2**31), b"\0" * 24), None, LimitExceededError,
                                       "shape (2147483648, 2147483648)"),
    "in-band-array-data-shorter-than-shape": (_setstate_array((1000,), b"\0" * 24), None, CapsuleFormatError,
                                              "comes with 24 bytes"),
    "in-band-array-absurd-shape": (_setstate_array((2**40, 2**40), b"\0" * 8), None, LimitExceededError,
                                   "max_array_elements"),
    "ndarray-called-with-absurd-shape": (_ndarray_call((2**40, 2**20)), None, CapsuleFormatError,
                                         "calls numpy.ndarray"),
    "array-over-the-element-cap": (pickled(lambda: {"weights": np.zeros(5000)}), Limits(max_array_elements=1000),
                                   LimitExceededError, "max_array_elements"),
}


def _details(members: dict[str, bytes]) -> dict[str, Any]:
    return {"member": STREAM, "protocol": 5, "buffers": sum(n.startswith("model/buffers/") for n in members)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_trusted_types_with_hostile_state_are_refused_by_name(tmp_path: Path, case: str) -> None:
    build, limits, error, needle = CASES[case]
    members = build(tmp_path)
    path = build_capsule(tmp_path / "abuse.capsule", members, details=_details(members))
    with pytest.raises(CapsuleError) as info:
        mc.load(path, limits=limits, verify=False)
    assert type(info.value) is error, f"{case}: {type(info.value).__name__}: {info.value}"
    assert needle in str(info.value), f"{case}: {info.value}"


def test_the_element_cap_names_the_knob_to_raise(tmp_path: Path) -> None:
    members = pickled(lambda: {"weights": np.zeros(5000)})(tmp_path)
    path = build_capsule(tmp_path / "cap.capsule", members, details=_details(members))
    with pytest.raises(LimitExceededError, match=r"Limits\(max_array_elements=\.\.\.\)"):
        mc.load(path, limits=Limits(max_array_elements=1000), verify=False)
    assert mc.load(path, limits=Limits(max_array_elements=5000), verify=False)["weights"].shape == (5000,)


def test_healthy_models_pass_the_same_checks(tmp_path: Path) -> None:
    models = {
        "forest": RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y),
        "hgb": HistGradientBoostingClassifier(max_iter=3).fit(X, Y),
        "kd": KNeighborsClassifier(algorithm="kd_tree").fit(X, Y),
        "ball": KNeighborsClassifier(algorithm="ball_tree").fit(X, Y),
        "dummy": DummyClassifier(strategy="prior", random_state=np.random.RandomState(0)).fit(X, Y),
    }
    sparse = LogisticRegression(max_iter=500).fit(X, Y)
    sparse.sparsify()
    models["sparse"] = sparse
    for name, model in models.items():
        path = tmp_path / f"{name}.capsule"
        mc.save(model, path, sample=X[:10], source=False)
        loaded = mc.load(path)
        assert (loaded.predict(X[:10]) == model.predict(X[:10])).all()


def _no_core_dump() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


_CRASH = """
import pickle, sys
model = pickle.loads(open(sys.argv[1], "rb").read())
model.predict(__import__("numpy").zeros((5, 4)))  # the root sends zeros left
"""


@pytest.mark.parametrize("case", ["random-state-pos-outside-key", "tree-child-outside-node-array"])
def test_without_the_check_native_code_would_crash(tmp_path: Path, case: str) -> None:
    """What the refusal prevents: plain pickle accepts the state and predicting crashes the process."""
    payload = tmp_path / "model.pkl"
    payload.write_bytes(CASES[case][0](tmp_path)[STREAM])
    done = subprocess.run([sys.executable, "-c", _CRASH, str(payload)], capture_output=True, timeout=60,
                          check=False, preexec_fn=_no_core_dump)
    assert done.returncode < 0, f"{case}: exit {done.returncode}: {done.stderr[-300:]!r}"  # killed by a signal



@pytest.mark.parametrize(
    ("buffers", "needle"),
    [([[0, 64]], "buffer span [0, 64] outside"), ([[16, 1 << 40]], "outside"), ([[-8, 8]], "[-8, 8]"),
     ("0:24", "'buffers' entry is malformed")],
    ids=["past-the-member", "absurd-size", "negative-offset", "not-a-list"],
)
def test_out_of_band_buffer_spans_must_lie_inside_their_member(tmp_path: Path, buffers: Any, needle: str) -> None:
    """The manifest says where each out-of-band array's bytes are; a span outside the member is refused."""
    members = _frombuffer((3,), b"")(tmp_path)
    del members["model/buffers/000000.bin"]
    members["model/buffers.bin"] = b"\0" * 24
    details = {"member": STREAM, "protocol": 5, "buffers": buffers, "buffers_member": "model/buffers.bin"}
    path = build_capsule(tmp_path / "spans.capsule", members, details=details)
    with pytest.raises(CapsuleFormatError) as info:
        mc.load(path, verify=False)
    assert needle in str(info.value)
