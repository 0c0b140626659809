"""Hostile .skops files built only from names the default policy admits (or outside it), each with a canary.

A .skops file is never loaded by ``skops.io.load``: modelcapsule walks its schema and builds each node
with the safe unpickler's rules (``modelcapsule.security.skops_build``). Each file here is something
skops's own loader, told to trust our defaults, would have turned into code execution, a call of a
value, a change to a trusted class, an allocation sized by the file or an out-of-bounds index. For every
one, the canary never appears, ``mc.load`` raises a typed error naming the node, and ``mc.audit`` reports
exactly the refusal ``mc.load`` raises.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse
import scipy.stats
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RandomizedSearchCV

import modelcapsule as mc
from modelcapsule.errors import CapsuleError, CapsuleFormatError, LimitExceededError, UntrustedTypesError

_ids = iter(range(1000, 10**6))


def node(loader: str, module: str, cls: str, **fields: Any) -> dict[str, Any]:
    return {"__class__": cls, "__module__": module, "__loader__": loader, "__id__": next(_ids), **fields}


def js(value: Any) -> dict[str, Any]:
    return node("JsonNode", "builtins", "str", content=json.dumps(value), is_json=True)


def lst(*items: dict[str, Any]) -> dict[str, Any]:
    return node("ListNode", "builtins", "list", content=list(items))


def tup(*items: dict[str, Any]) -> dict[str, Any]:
    return node("TupleNode", "builtins", "tuple", content=list(items))


def dct(items: dict[str, dict[str, Any]], key_type: dict[str, Any] | None = None) -> dict[str, Any]:
    key = key_type or node("TypeNode", "builtins", "str")
    return node("DictNode", "builtins", "dict", content=items, key_types=lst(*[key for _ in items]))


def write(path: Path, root: dict[str, Any], members: dict[str, bytes] | None = None,
          compress: int = zipfile.ZIP_STORED) -> Path:
    root = {**root, "protocol": 2, "_skops_version": "0.16.0"}
    with zipfile.ZipFile(path, "w", compression=compress) as archive:
        archive.writestr("schema.json", json.dumps(root))
        for name, body in (members or {}).items():
            archive.writestr(name, body)
    return path


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def refused_alike(path: Path, error: type[Exception] = CapsuleFormatError, match: str | None = None) -> str:
    """audit reports exactly what load raises; returns the message."""
    report = mc.audit(path)
    with pytest.raises(error, match=match) as info:
        mc.load(path)
    assert not report.ok
    if isinstance(info.value, UntrustedTypesError):
        assert set(info.value.names) <= set(report.untrusted)
    else:
        assert report.problems == [str(info.value)]
    return str(info.value)


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    return tmp_path / "canary.txt"


def template(canary: Path) -> str:
    return f"open({str(canary)!r}, 'w').write('x')\n"


# ------------------------------------------------------------------------------- scipy distributions


def test_a_distribution_whose_state_holds_a_template_is_refused_not_executed(tmp_path: Path, canary: Path) -> None:
    """The lead's reproducer: a default-trusted norm_gen created blank and given a code template."""
    root = node("ObjectNode", "scipy.stats._continuous_distns", "norm_gen",
                content=dct({"_parse_arg_template": js(template(canary))}))
    message = refused_alike(write(tmp_path / "evil.skops", root), match="constructor parameters")
    assert "node model (ObjectNode scipy.stats._continuous_distns.norm_gen)" in message
    assert not canary.exists()


def test_the_template_runs_neither_from_a_capsule_nor_through_convert(tmp_path: Path, canary: Path) -> None:
    root = node("ObjectNode", "scipy.stats._continuous_distns", "norm_gen",
                content=dct({"_parse_arg_template": js(template(canary))}))
    data = write(tmp_path / "evil.skops", root).read_bytes()
    member = "model/model.skops"
    capsule = tmp_path / "evil.capsule"
    (capsule / "model").mkdir(parents=True)
    (capsule / member).write_bytes(data)
    doc = {"capsule_version": 1, "name": "evil", "created_at": "2026-01-01T00:00:00Z",
           "model": {"framework": "sklearn", "class": "x", "task": "x", "methods": [], "params": {}},
           "format": {"name": "skops", "member": member},
           "files": {member: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}},
           "signature": None, "environment": {"python": "3.11", "packages": {}}, "provenance": {},
           "sample": None, "types": [], "metadata": {}}
    (capsule / "capsule.json").write_text(json.dumps(doc))
    refused_alike(capsule, match="constructor parameters")
    with pytest.raises(CapsuleFormatError, match="constructor parameters"):
        mc.convert(tmp_path / "evil.skops", tmp_path / "converted.capsule")
    assert not canary.exists()


def test_a_distribution_with_plain_parameters_and_a_template_is_rebuilt_and_the_template_ignored(
        tmp_path: Path, canary: Path) -> None:
    """The silent variant: genuine constructor parameters next to the template. The distribution is rebuilt
    from the parameters by its own __init__; the template from the file never runs."""
    params = {"momtype": js(1), "a": js(None), "b": js(None), "xtol": js(1e-14), "badvalue": js(None),
              "name": js("norm"), "longname": js(None), "shapes": js(None), "seed": js(None)}
    root = node("ObjectNode", "scipy.stats._continuous_distns", "norm_gen",
                content=dct({"_ctor_param": dct(params), "_parse_arg_template": js(template(canary))}))
    path = write(tmp_path / "evil.skops", root)
    assert mc.audit(path).ok
    dist = mc.load(path)
    assert isinstance(dist, scipy.stats._continuous_distns.norm_gen)
    assert dist.cdf(0.0) == pytest.approx(0.5)
    assert "open(" not in dist._parse_arg_template
    assert not canary.exists()


def test_a_frozen_distribution_wrapping_a_hostile_one_is_refused(tmp_path: Path, canary: Path) -> None:
    dist = node("ObjectNode", "scipy.stats._continuous_distns", "norm_gen",
                content=dct({"_parse_arg_template": js(template(canary))}))
    root = node("ObjectNode", "scipy.stats._distn_infrastructure", "rv_continuous_frozen",
                content=dct({"args": tup(), "kwds": dct({}), "dist": dist}))
    message = refused_alike(write(tmp_path / "evil.skops", root), match="constructor parameters")
    assert "model.dist" in message
    assert not canary.exists()


@pytest.mark.parametrize("loader", ["LossNode", "TreeNode", "ConstructorFromReduceNode"])
def test_reduce_style_loaders_never_call_a_distribution(tmp_path: Path, canary: Path, loader: str) -> None:
    """skops's reduce loaders call the named class with the file's arguments, then give it the file's state."""
    state = dct({"_parse_arg_template": js(template(canary))})
    if loader == "ConstructorFromReduceNode":
        root = node(loader, "scipy.stats._continuous_distns", "norm_gen", content=tup(js(0)))
    else:
        root = node(loader, "scipy.stats._continuous_distns", "norm_gen", content=state,
                    __reduce__={"args": tup()})
    refused_alike(write(tmp_path / "evil.skops", root))
    assert not canary.exists()


# ------------------------------------------------------------------------------- names and their roles


def test_a_class_with_an_unreviewed_setstate_is_refused_by_name(tmp_path: Path, canary: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "evilmod.py"
    module.write_text(f"class Evil:\n    def __setstate__(self, state):\n        open({str(canary)!r}, 'w')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    root = node("ObjectNode", "evilmod", "Evil", content=dct({"x": js(1)}))
    refused_alike(write(tmp_path / "evil.skops", root), UntrustedTypesError)
    assert not canary.exists()


def test_a_value_function_is_never_called_by_a_reduce_loader(tmp_path: Path) -> None:
    """numpy.power is trusted as a parameter value (FunctionTransformer(func=...)); called by the file on
    Python integers it burns seconds of CPU per byte. No loader may call it."""
    for loader in ("ConstructorFromReduceNode", "LossNode"):
        args = tup(js(7), js(10**6))
        root = (node(loader, "numpy", "power", content=args) if loader == "ConstructorFromReduceNode"
                else node(loader, "numpy", "power", content=dct({}), __reduce__={"args": args}))
        message = refused_alike(write(tmp_path / f"{loader}.skops", root), match="admits only as a value")
        assert f"({loader} numpy.power)" in message


def test_a_function_kept_as_a_value_cannot_become_a_dict_key_type(tmp_path: Path) -> None:
    """skops calls each key type with the key's text; a value function there would be called."""
    root = dct({"3": js(1)}, key_type=node("FunctionNode", "numpy", "power"))
    refused_alike(write(tmp_path / "evil.skops", root), match="key type is numpy.power")


def test_a_class_cannot_become_a_dict_key_type(tmp_path: Path) -> None:
    root = dct({"C:/x": js(1)}, key_type=node("TypeNode", "sklearn.pipeline", "Pipeline"))
    refused_alike(write(tmp_path / "evil.skops", root), match="key type is sklearn.pipeline.Pipeline")


def test_a_value_function_cannot_be_a_default_factory(tmp_path: Path) -> None:
    root = node("DefaultDictNode", "collections", "defaultdict",
                content={"main": dct({}), "default_factory": node("FunctionNode", "numpy", "power")})
    refused_alike(write(tmp_path / "evil.skops", root), match="numpy.power where a trusted class is expected")


def test_a_container_node_naming_a_class_would_call_it_and_is_refused(tmp_path: Path) -> None:
    root = node("ListNode", "sklearn.pipeline", "Pipeline", content=[js("a")])
    refused_alike(write(tmp_path / "evil.skops", root), match="would call it with the file's items")


@pytest.mark.parametrize("loader", ["PartialNode", "OperatorFuncNode", "MethodNode"])
def test_partial_operator_and_method_nodes_need_the_users_trust(tmp_path: Path, canary: Path, loader: str) -> None:
    shell = node("FunctionNode", "posix", "system")
    if loader == "PartialNode":
        root = node(loader, "functools", "partial",
                    content={"func": shell, "args": tup(js(f"touch {canary}")), "kwds": dct({}),
                             "namespace": js(None)})
    elif loader == "OperatorFuncNode":
        root = node(loader, "operator", "methodcaller", attrs=tup(js("fit"), js(str(canary))))
    else:
        root = node(loader, "sklearn.linear_model._logistic", "LogisticRegression",
                    content={"func": "fit", "obj": node("ObjectNode", "sklearn.linear_model._logistic",
                                                        "LogisticRegression", content=dct({}))})
    refused_alike(write(tmp_path / "evil.skops", root), UntrustedTypesError)
    assert not canary.exists()


def test_a_bit_generator_name_held_as_text_must_be_a_real_bit_generator(tmp_path: Path) -> None:
    state = dct({"bit_generator": js("seed"), "state": dct({})})
    root = node("RandomGeneratorNode", "numpy.random._generator", "Generator", content={"bit_generator": state})
    refused_alike(write(tmp_path / "evil.skops", root), match="not one of numpy's")


def test_a_slot_state_or_a_dunder_key_never_reaches_an_estimator(tmp_path: Path) -> None:
    dunder = node("ObjectNode", "sklearn.linear_model._logistic", "LogisticRegression",
                  content=dct({"__class__": js("x")}))
    refused_alike(write(tmp_path / "dunder.skops", dunder), match="special __x__ names")
    slots = node("ObjectNode", "sklearn.linear_model._logistic", "LogisticRegression",
                 content=tup(dct({}), dct({"C": js(1.0)})))
    refused_alike(write(tmp_path / "slots.skops", slots), match="only a plain dict")


# ------------------------------------------------------------------------------- budgets and arrays


def test_a_schema_nested_past_the_budget_is_refused_before_building(tmp_path: Path) -> None:
    root: dict[str, Any] = js(0)
    for _ in range(150):
        root = lst(root)
    refused_alike(write(tmp_path / "deep.skops", root), LimitExceededError, match="max_nesting_depth")


def test_a_cycle_between_nodes_is_refused(tmp_path: Path) -> None:
    root = lst()
    root["content"] = [{"__class__": "list", "__module__": "builtins", "__loader__": "CachedNode",
                        "__id__": root["__id__"]}]
    refused_alike(write(tmp_path / "cycle.skops", root), match="cycle")


def npy_header(descr: str, shape: str) -> bytes:
    """A version 1.0 .npy header declaring ``descr`` and ``shape``, padded as numpy pads it."""
    header = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape}, }}".encode().ljust(117) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def test_an_array_declaring_more_elements_than_the_cap_is_refused_before_allocating(tmp_path: Path) -> None:
    raw = npy_header("<f8", "(10000000000000,)") + bytes(32)
    root = node("NdArrayNode", "numpy", "ndarray", type="numpy", file="a.npy")
    refused_alike(write(tmp_path / "huge.skops", root, {"a.npy": raw}), LimitExceededError,
                  match="max_array_elements")


def test_an_array_whose_header_lies_about_its_size_is_refused(tmp_path: Path) -> None:
    raw = npy(np.zeros(1000))[:-16]  # the header still says 1000 elements
    root = node("NdArrayNode", "numpy", "ndarray", type="numpy", file="a.npy")
    refused_alike(write(tmp_path / "short.skops", root, {"a.npy": raw}), match="truncated or forged")


def test_an_npy_member_of_pickled_objects_is_refused(tmp_path: Path, canary: Path) -> None:
    """numpy writes object arrays as a pickle after the header; np.load(allow_pickle=True) would run it."""
    payload = b"cposix\nsystem\n(V" + f"touch {canary}".encode() + b"\ntR."
    raw = npy_header("|O", "(1,)") + payload
    root = node("NdArrayNode", "numpy", "ndarray", type="numpy", file="a.npy")
    refused_alike(write(tmp_path / "objects.skops", root, {"a.npy": raw}), match="only pickle can fill")
    assert not canary.exists()


def test_a_compressed_member_past_the_ratio_is_refused_before_inflating(tmp_path: Path) -> None:
    root = node("NdArrayNode", "numpy", "ndarray", type="numpy", file="a.npy")
    path = write(tmp_path / "bomb.skops", root, {"a.npy": npy(np.zeros(2_000_000))}, compress=zipfile.ZIP_DEFLATED)
    refused_alike(path, LimitExceededError, match="max_compression_ratio")


def _sparse_file(tmp_path: Path, indices: list[int]) -> Path:
    matrix = scipy.sparse.csr_matrix(np.eye(3))
    buf = io.BytesIO()
    np.savez(buf, indices=np.array(indices, dtype=np.int32), indptr=matrix.indptr, format=b"csr",
             shape=np.array(matrix.shape), data=matrix.data)
    root = node("SparseMatrixNode", "scipy.sparse._csr", "csr_matrix", type="scipy", file="m.npz")
    return write(tmp_path / "sparse.skops", root, {"m.npz": buf.getvalue()})


def test_sparse_indices_outside_the_shape_are_refused_by_audit_and_load(tmp_path: Path) -> None:
    refused_alike(_sparse_file(tmp_path, [0, 1, 10**6]), match="indices point outside")


def test_a_genuine_sparse_matrix_loads(tmp_path: Path) -> None:
    loaded = mc.load(_sparse_file(tmp_path, [0, 1, 2]))
    np.testing.assert_array_equal(loaded.toarray(), np.eye(3))


# ------------------------------------------------------------------------------- what still loads


def test_a_search_over_a_scipy_distribution_loads_with_the_distribution_rebuilt(tmp_path: Path) -> None:
    import skops.io

    x, y = load_iris(return_X_y=True)
    search = RandomizedSearchCV(LogisticRegression(max_iter=300), {"C": scipy.stats.uniform(0.1, 1)}, n_iter=2,
                                cv=2, random_state=0).fit(x, y)
    path = tmp_path / "search.skops"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        skops.io.dump(search, path)
    assert mc.audit(path).ok
    loaded = mc.load(path)
    np.testing.assert_array_equal(loaded.predict(x), search.predict(x))
    dist = loaded.param_distributions["C"]
    assert isinstance(dist.dist, scipy.stats._continuous_distns.uniform_gen)
    assert dist.mean() == pytest.approx(0.6)
    assert 0.1 <= dist.rvs(random_state=0) <= 1.1


def test_every_refusal_is_a_typed_modelcapsule_error(tmp_path: Path) -> None:
    """Malformed nodes (missing fields, wrong shapes) are format errors, never a KeyError or TypeError."""
    bad: list[Callable[[], dict[str, Any]]] = [
        lambda: node("ObjectNode", "os", "path.join"),
        lambda: node("TreeNode", "sklearn.tree._tree", "Tree", content=dct({})),
        lambda: node("DictNode", "builtins", "dict", content={"a": js(1)}, key_types=js([])),
        lambda: node("NdArrayNode", "numpy", "ndarray", type="json", content=[js(1)], shape=tup(js(2))),
        lambda: node("SliceNode", "builtins", "slice", content={"start": "x", "stop": None, "step": None}),
        lambda: node("UnknownNode", "builtins", "int"),
    ]
    for i, make in enumerate(bad):
        path = write(tmp_path / f"bad{i}.skops", make())
        with pytest.raises(CapsuleError):
            mc.load(path)
        assert not mc.audit(path).ok


def test_a_name_the_user_trusts_is_built_as_they_asked(tmp_path: Path) -> None:
    """functools.partial is outside the defaults (skops would call it with the file's arguments): refused by
    name, and built once the user names it."""
    import functools

    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    model = FunctionTransformer(func=functools.partial(np.add, 1.0)).fit(np.zeros((2, 2)))
    path = tmp_path / "partial.skops"
    skops.io.dump(model, path)
    assert mc.audit(path).untrusted == ["functools.partial"]
    with pytest.raises(UntrustedTypesError):
        mc.load(path)
    loaded = mc.load(path, trusted=["functools.partial"])
    np.testing.assert_array_equal(loaded.transform(np.ones((2, 2))), np.full((2, 2), 2.0))


def test_a_dict_keyed_by_a_users_own_type_needs_their_trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """skops converts each key by calling its type with the key's text: only the fixed table for default
    names, and the type itself only when the user trusts it."""
    (tmp_path / "keymod.py").write_text("class Key(str):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    root = dct({"a": js(1)}, key_type=node("TypeNode", "keymod", "Key"))
    path = write(tmp_path / "keys.skops", root)
    refused_alike(path, UntrustedTypesError)
    loaded = mc.load(path, trusted=["keymod.Key"])
    assert loaded == {"a": 1} and type(next(iter(loaded))).__name__ == "Key"


def test_the_build_never_runs_without_its_dry_run(tmp_path: Path, canary: Path) -> None:
    """Loaders audit first and a load reuses that accepted dry run for the same bytes, policy and limits; a
    build called on its own (or after an audit under another policy) runs the dry run itself."""
    from modelcapsule.core.container import Limits
    from modelcapsule.security.policy import TrustPolicy
    from modelcapsule.security.skops_build import audit_skops, load_skops

    root = node("ObjectNode", "scipy.stats._continuous_distns", "norm_gen",
                content=dct({"_parse_arg_template": js(template(canary))}))
    data = write(tmp_path / "evil.skops", root).read_bytes()
    with pytest.raises(CapsuleFormatError, match="constructor parameters"):
        load_skops(data, what="evil", policy=TrustPolicy(), limits=Limits())
    shell = node("PartialNode", "functools", "partial",
                 content={"func": node("FunctionNode", "numpy", "add"), "args": tup(js(1)), "kwds": dct({}),
                          "namespace": js(None)})
    partial = write(tmp_path / "partial.skops", shell).read_bytes()
    assert audit_skops(partial, what="p", policy=TrustPolicy(["functools.partial"]), limits=Limits())
    with pytest.raises(UntrustedTypesError):
        load_skops(partial, what="p", policy=TrustPolicy(), limits=Limits())
    assert not canary.exists()
