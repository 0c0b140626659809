"""skops files that use default-trusted names the way their role forbids.

skops decides how to build each node from the file's own ``__loader__`` field: ``FunctionNode`` imports a
function, ``ObjectNode`` creates a blank object, ``ReduceNode`` *calls* the named class with arguments
from the file. A name our policy admits only as a value (``numpy.power``) or a blank class
(``sklearn.utils.deprecation.deprecated``) must never reach a calling loader, and skops must never be
told to trust a name just because our defaults list it.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.preprocessing import FunctionTransformer

import modelcapsule as mc
from modelcapsule.errors import CapsuleError


def _skops_file(tmp: Path, edit: Callable[[dict[str, Any]], dict[str, Any]]) -> Path:
    import skops.io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = skops.io.dumps(FunctionTransformer(func=np.log1p))
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "schema.json":
                body = json.dumps(edit(json.loads(body))).encode()
            dst.writestr(info, body)
    path = tmp / "hostile.skops"
    path.write_bytes(out.getvalue())
    return path


def _func(schema: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = schema["content"]["content"]["func"]
    return node


def _reduce(module: str, cls: str, args: list[Any]) -> dict[str, Any]:
    return {"__class__": cls, "__module__": module, "__loader__": "ReduceNode", "__id__": 1,
            "content": {"constructor": {"__class__": cls, "__module__": module, "__loader__": "TypeNode",
                                        "__id__": 2},
                        "args": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                                 "__id__": 3, "content": args},
                        "attrs": {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
                                  "__id__": 4, "content": {}}}}


def _as(node: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def edit(schema: dict[str, Any]) -> dict[str, Any]:
        schema["content"]["content"]["func"] = node
        return schema

    return edit


def _nested(depth: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def edit(schema: dict[str, Any]) -> dict[str, Any]:
        node: dict[str, Any] = {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode",
                                "__id__": 9, "content": []}
        for _ in range(depth):
            node = {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "__id__": 9,
                    "content": [node]}
        schema["content"]["content"]["func"] = node
        return schema

    return edit


CASES = {
    "value-function-called-by-reduce": _as(_reduce("numpy", "power", [])),
    "blank-class-called-by-reduce": _as(_reduce("sklearn.utils.deprecation", "deprecated", [])),
    "value-function-as-an-object": _as({"__class__": "power", "__module__": "numpy", "__loader__": "ObjectNode",
                                        "__id__": 7, "content": {"__class__": "dict", "__module__": "builtins",
                                                                 "__loader__": "DictNode", "__id__": 8,
                                                                 "content": {}}}),
    "method-of-a-trusted-class": _as({"__class__": "get_params", "__module__": "sklearn.base",
                                      "__loader__": "MethodNode", "__id__": 7, "content": {}}),
    "schema-nested-past-the-budget": _nested(400),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_skops_loaders_are_held_to_the_names_role(tmp_path: Path, case: str) -> None:
    path = _skops_file(tmp_path, CASES[case])
    with pytest.raises(CapsuleError):
        mc.load(path)
    assert not mc.audit(path).ok


def test_a_plain_function_parameter_still_loads(tmp_path: Path) -> None:
    path = _skops_file(tmp_path, lambda schema: schema)
    assert _func(json.loads(zipfile.ZipFile(path).read("schema.json")))["__loader__"] == "FunctionNode"
    model = mc.load(path)
    assert model.func is np.log1p


def test_a_schema_nested_thousands_deep_is_a_problem_for_audit_and_a_refusal_for_load(tmp_path: Path) -> None:
    """JSON nested 5,000 levels deep makes the JSON reader recurse past Python's limit: audit reports it and
    load refuses it, both as typed errors; no RecursionError escapes."""
    leaf = '{"__class__": "int", "__module__": "builtins", "__loader__": "JSONNode", "content": "1", "__id__": 1}'
    depth = 5_000
    nested = '{"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "__id__": 2, "content": ['
    schema = ('{"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "protocol": 2, '
              '"_skops_version": "0.10", "__id__": 0, "content": [' + nested * depth + leaf + "]}" * depth + "]}")
    path = tmp_path / "deep.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", schema)
    report = mc.audit(path)
    assert not report.ok
    assert "malformed or hostile" in report.problems[0] and "RecursionError" in report.problems[0]
    with pytest.raises(CapsuleError, match="malformed or hostile"):
        mc.load(path)
