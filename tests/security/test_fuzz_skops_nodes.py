"""Random trees of skops nodes (every loader, names from the defaults and outside them, fields right and
wrong) through ``mc.audit`` and ``mc.load``: whatever the tree, the answer is a model or a typed
modelcapsule error (from the loader and from the schema walk itself, which names the node), never a builtin
exception, and nothing is written next to the file."""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelcapsule as mc
from modelcapsule.core.container import Limits
from modelcapsule.errors import CapsuleError
from modelcapsule.security.policy import TrustPolicy
from modelcapsule.security.skops_build import audit_skops, load_skops

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

LOADERS = ["ObjectNode", "TreeNode", "LossNode", "ConstructorFromReduceNode", "FunctionNode", "TypeNode", "JsonNode",
           "DictNode", "ListNode", "SetNode", "TupleNode", "DefaultDictNode", "BytesNode", "SliceNode", "NdArrayNode",
           "DTypeNode", "MaskedArrayNode", "SparseMatrixNode", "RandomStateNode", "RandomGeneratorNode",
           "MethodNode", "PartialNode", "OperatorFuncNode", "CachedNode", "ReduceNode"]
NAMES = [("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "str"), ("builtins", "int"),
         ("numpy", "ndarray"), ("numpy", "power"), ("numpy", "float64"), ("numpy", "dtype"),
         ("scipy.stats._continuous_distns", "norm_gen"), ("sklearn.tree._tree", "Tree"),
         ("sklearn.linear_model._logistic", "LogisticRegression"), ("collections", "OrderedDict"),
         ("collections", "defaultdict"), ("sklearn.utils._bunch", "Bunch"), ("functools", "partial"),
         ("operator", "methodcaller"), ("numpy.random._generator", "Generator"), ("posix", "system"),
         ("sklearn._loss._loss", "CyHalfSquaredError"), ("builtins", "bytearray"), ("builtins", "slice")]

plain = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**6), st.floats(allow_nan=False), st.text(max_size=8))


def nodes(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    name = st.sampled_from(NAMES)
    return st.builds(
        lambda loader, mc_, ident, content, extra: {"__loader__": loader, "__module__": mc_[0], "__class__": mc_[1],
                                                    "__id__": ident, **content, **extra},
        st.sampled_from(LOADERS), name, st.integers(0, 6),
        st.one_of(st.just({}), st.fixed_dictionaries({"content": st.one_of(
            children, st.lists(children, max_size=3), st.dictionaries(st.sampled_from(["a", "b", "__dict__", "1"]),
                                                                       children, max_size=3),
            plain.map(json.dumps))})),
        st.fixed_dictionaries({}, optional={
            "key_types": children, "__reduce__": st.fixed_dictionaries({"args": children}),
            "type": st.sampled_from(["numpy", "json", "scipy"]), "file": st.sampled_from(["a.npy", "nope"]),
            "shape": children, "attrs": children}))


leaf = st.fixed_dictionaries({"__loader__": st.just("JsonNode"), "__module__": st.just("builtins"),
                              "__class__": st.just("str"), "content": plain.map(json.dumps)})
trees = st.recursive(leaf, nodes, max_leaves=12)


@FUZZ
@given(tree=trees)
def test_random_node_trees_give_a_model_or_a_typed_error(tree: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "fuzz.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", json.dumps({**tree, "protocol": 2}))
        archive.writestr("a.npy", b"\x93NUMPY\x01\x00v\x00" + b"{'descr': '<f8', 'fortran_order': False, "
                         b"'shape': (2,), }".ljust(117) + b"\n" + bytes(16))
    report = mc.audit(path)
    assert isinstance(report.ok, bool)
    with contextlib.suppress(CapsuleError):
        mc.load(path)
    # the walk itself (under the loader's safety net) raises nothing but modelcapsule's own errors
    data = path.read_bytes()
    with contextlib.suppress(CapsuleError):
        audit_skops(data, what="fuzz", policy=TrustPolicy(), limits=Limits())
    with contextlib.suppress(CapsuleError):
        load_skops(data, what="fuzz", policy=TrustPolicy(), limits=Limits())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fuzz.skops"]
