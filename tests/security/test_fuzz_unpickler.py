"""Fuzzing the restricted unpickler and the checks around it.

Two generators: byte-level mutations of real model pickles (trees, boosting, neighbours, sparse
coefficients, random states), and pickles assembled from a vocabulary of opcodes, trusted and
untrusted globals. Whatever comes in, only modelcapsule's typed errors may come out of the scan, the
unpickler and the post-construction checks; a model that passes them must not crash when used; and
the scanner and the unpickler must agree: a stream the scan accepts with an untrusted name is refused
by the unpickler too (they are two parsers, so this is checked, not assumed).
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import warnings
from typing import Any

import numpy as np
from hostile_corpus import (
    BUILD,
    EMPTY_DICT,
    EMPTY_LIST,
    EMPTY_TUPLE,
    MARK,
    MEMOIZE,
    NONE,
    POP,
    PROTO5,
    REDUCE,
    SETITEM,
    STACK_GLOBAL,
    STOP,
    TUPLE,
    glob,
    integer,
    text,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelcapsule.errors import CapsuleError, UntrustedTypesError
from modelcapsule.security.pickle_scan import scan_pickle
from modelcapsule.security.policy import DEFAULT_POLICY, restricted_loads
from modelcapsule.security.state_checks import validate_model

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "250")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def seeds() -> tuple[tuple[bytes, Any], ...]:
    """Pickles of fitted models whose state reaches native code, with an input to predict on."""
    from sklearn.datasets import load_iris
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True)
    sparse = LogisticRegression(max_iter=300).fit(X, y)
    sparse.sparsify()
    models = [DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y),
              HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(X, y),
              KNeighborsClassifier(algorithm="kd_tree").fit(X, y),
              KNeighborsClassifier(algorithm="ball_tree").fit(X, y), sparse,
              DummyClassifier(strategy="stratified", random_state=np.random.RandomState(0)).fit(X, y)]
    return tuple((pickle.dumps(m, protocol=5), X[::10]) for m in models)


def load_checked(raw: bytes) -> Any:
    """The loader's three steps on one stream: scan, restricted construction, post-construction checks."""
    scan_pickle(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = restricted_loads(raw, DEFAULT_POLICY)
    validate_model(model)
    return model


@FUZZ
@given(which=st.integers(0, 5), edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)),
                                                 min_size=1, max_size=4))
def test_mutated_model_pickles_raise_only_typed_errors_and_never_crash(which: int,
                                                                       edits: list[tuple[int, int]]) -> None:
    raw, X = seeds()[which]
    blob = bytearray(raw)
    for where, value in edits:
        blob[where % len(blob)] = value
    try:
        model = load_checked(bytes(blob))
    except CapsuleError:
        return
    # It passed every check: using it may raise (the model is damaged) but must not crash the process.
    with contextlib.suppress(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.predict(X)


TRUSTED = [("builtins", "set"), ("builtins", "slice"), ("collections", "OrderedDict"), ("numpy", "dtype"),
           ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("copyreg", "_reconstructor"),
           ("fractions", "Fraction"), ("sklearn.tree._tree", "Tree")]
UNTRUSTED = [("os", "system"), ("builtins", "eval"), ("builtins", "getattr"), ("pickle", "loads"),
             ("subprocess", "Popen")]
atoms = st.one_of(
    st.sampled_from([glob(m, n) for m, n in TRUSTED + UNTRUSTED]),
    st.sampled_from([text(m) + text(n) + STACK_GLOBAL for m, n in TRUSTED + UNTRUSTED]),
    st.sampled_from([text("f8"), text("V8"), text("x"), text("echo"), integer(0), integer(8), integer(3),
                     integer(-1), integer(2**40), NONE, b"\x88", b"\x89"]),
    st.sampled_from([MARK, TUPLE, EMPTY_TUPLE, EMPTY_DICT, EMPTY_LIST, SETITEM, b"u", b"e", b"a", REDUCE, BUILD,
                     MEMOIZE, POP, b"2", b"h\x00", b"h\x01", b"\x85", b"\x86", b"\x87", b"\x81", b"\x92", b"o",
                     b"1", b"\x90", b"\x91", b"\x8f"]),
)


@FUZZ
@given(ops=st.lists(atoms, min_size=1, max_size=24))
def test_assembled_pickles_raise_only_typed_errors_and_both_parsers_agree(ops: list[bytes]) -> None:
    raw = PROTO5 + b"".join(ops) + STOP
    try:
        found = scan_pickle(raw).globals
    except CapsuleError:
        found = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            restricted_loads(raw, DEFAULT_POLICY)
    except UntrustedTypesError as exc:
        if found is not None:
            assert set(exc.names) <= set(found), "the unpickler met a name the scan did not report"
        return
    except CapsuleError:
        return
    if found is not None:
        assert not DEFAULT_POLICY.untrusted(found), f"the scan saw {found} but the unpickler accepted it"
