"""The schema of every section of ``capsule.json``, checked when the manifest is parsed.

The manifest comes from the file, so every value in it is untrusted input. Each section is checked
here for the shape the rest of the package relies on (a ``packages`` mapping of names to version
strings, a list of method names, a signature whose dtypes numpy knows...), so that a hostile value is a
:class:`~modelcapsule.errors.CapsuleFormatError` naming the field at parse time, never a ``KeyError`` or
``TypeError`` somewhere later. Free-form sections (``metadata``, ``model.params``, ``provenance.metrics``)
are only bounded in nesting depth.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import CapsuleFormatError
from ..types import Signature
from .sample_files import check_sample_section

__all__ = ["MAX_DEPTH", "TREE_LAYOUT", "check_sections", "check_signature", "check_trees"]

MAX_DEPTH = 32
"""Deepest nesting of lists and objects anywhere in the manifest."""

MAX_LIST = 100_000
"""Longest list of names (methods, packages, requirements, signature tensors) a section may hold."""

_NAME = re.compile(r"[A-Za-z0-9_.\-+]{1,128}")
_MAX_TEXT = 4096


def _bad(field: str, what: str) -> CapsuleFormatError:
    return CapsuleFormatError(f"capsule.json field {field!r} {what}; the manifest is corrupt or hostile.")


def _depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse nesting deeper than ``limit`` (iteratively: a deep value must not exhaust the stack here)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise CapsuleFormatError(f"capsule.json nests deeper than {limit} levels; the manifest is hostile.")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _text(value: Any, field: str, *, optional: bool = True, limit: int = _MAX_TEXT) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or len(value) > limit:
        raise _bad(field, f"should be a string of at most {limit} characters")


def _str_list(value: Any, field: str) -> None:
    if value is None:
        return
    if not isinstance(value, list) or len(value) > MAX_LIST or not all(
            isinstance(v, str) and len(v) <= _MAX_TEXT for v in value):
        raise _bad(field, "should be a list of strings")


def check_model(model: Mapping[str, Any]) -> None:
    """``model``: framework, class and task are short strings; methods a list of names."""
    if not isinstance(model.get("framework", "unknown"), str) or not _NAME.fullmatch(
            str(model.get("framework", "unknown"))):
        raise _bad("model.framework", "should be a framework name")
    for key in ("class", "task"):
        _text(model.get(key), f"model.{key}")
    _str_list(model.get("methods"), "model.methods")
    if not isinstance(model.get("params", {}), (dict, type(None))):
        raise _bad("model.params", "should be an object")
    skipped = model.get("skipped_methods")
    if skipped is not None and (not isinstance(skipped, dict) or not all(
            isinstance(v, str) for v in skipped.values())):
        raise _bad("model.skipped_methods", "should map method names to reasons")


def check_format(fmt: Mapping[str, Any]) -> None:
    """``format``: a format name; its ``member`` (if any) a string; ``chosen_by``/``passed_over`` as written."""
    if not isinstance(fmt.get("name"), str) or not _NAME.fullmatch(fmt["name"]):
        raise _bad("format.name", "should be a format name")
    _text(fmt.get("member"), "format.member", limit=1024)
    passed = fmt.get("passed_over")
    if passed is not None and (not isinstance(passed, dict) or not all(isinstance(v, str) for v in passed.values())):
        raise _bad("format.passed_over", "should map format names to reasons")


def check_environment(env: Mapping[str, Any]) -> None:
    """``environment``: python, implementation, platform, machine are strings; packages maps names to
    version strings; requirements is a list of strings."""
    for key in ("python", "implementation", "platform", "machine"):
        _text(env.get(key), f"environment.{key}")
    packages = env.get("packages")
    if packages is not None:
        if not isinstance(packages, dict) or len(packages) > MAX_LIST:
            raise _bad("environment.packages", "should map package names to versions")
        for name, version in packages.items():
            if not _NAME.fullmatch(name) or not isinstance(version, str) or len(version) > 128:
                raise _bad("environment.packages", f"has a malformed entry for {name[:40]!r}")
    _str_list(env.get("requirements"), "environment.requirements")


def check_provenance(prov: Mapping[str, Any]) -> None:
    """``provenance``: source and training_data are objects with string paths and hashes; metrics free."""
    source = prov.get("source")
    if source is not None:
        if not isinstance(source, dict):
            raise _bad("provenance.source", "should be an object")
        for key in ("path", "sha256", "git_commit"):
            _text(source.get(key), f"provenance.source.{key}")
    for key in ("training_data", "metrics"):
        if not isinstance(prov.get(key, {}), (dict, type(None))):
            raise _bad(f"provenance.{key}", "should be an object")


def check_onnx(onnx: Any) -> None:
    """``onnx``: the export's member and the mapping of ONNX outputs to the methods they reproduce."""
    if onnx is None:
        return
    if not isinstance(onnx, dict):
        raise _bad("onnx", "should be an object")
    _text(onnx.get("member"), "onnx.member", limit=1024)
    outputs = onnx.get("outputs")
    if outputs is not None and (not isinstance(outputs, dict) or not all(
            isinstance(v, str) for v in outputs.values())):
        raise _bad("onnx.outputs", "should map ONNX output names to method names")


TREE_LAYOUT = 1
"""The stored-trees layout this release reads (``trees.layout``); a newer one is ignored, not refused."""

_TREE_FAMILIES = ("forest", "hist", "gb")
_TREE_LINKS = ("identity", "exp", "expit", "expit2", "softmax")
_TREE_METHODS = ("predict", "predict_proba", "decision_function")
_TREE_MEMBERS = ("roots", "children", "feature", "threshold", "missing_left", "value", "classes", "baseline")


def _count(value: Any, field: str, *, low: int = 1, high: int = 1 << 31) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _bad(field, f"should be an integer from {low} to {high}")


def check_trees(trees: Any) -> None:
    """``trees``: the stored flat trees of a tree ensemble (``trees/*.npy``, see
    :mod:`modelcapsule.frameworks.tree_store`). Fields: ``layout`` (1), ``family`` (forest, hist, gb),
    ``classifier``, ``n_features``, ``n_trees``, ``per_stage`` (trees per boosting iteration),
    ``n_outputs``, ``input_dtype`` (float32 or float64: what the model compares), ``allow_nan`` and
    ``allow_inf`` (whether the model takes them), ``link`` (how a boosting's sum becomes its output),
    ``learning_rate`` (GradientBoosting), ``object_labels`` (text labels given back as Python strings),
    ``feature_names`` (the columns the model was fitted on, if named), ``methods`` (the outputs proven
    identical at save) and ``members`` (array name → member). A layout newer than this release reads is
    left unchecked: the loader then serves the Python model."""
    if trees is None:
        return
    if not isinstance(trees, dict):
        raise _bad("trees", "should be an object")
    _count(trees.get("layout"), "trees.layout")
    if trees["layout"] > TREE_LAYOUT:
        return
    for key, allowed in (("family", _TREE_FAMILIES), ("link", _TREE_LINKS), ("input_dtype", ("float32", "float64"))):
        if trees.get(key) not in allowed:
            raise _bad(f"trees.{key}", f"should be one of {', '.join(allowed)}")
    for key in ("classifier", "allow_nan", "allow_inf"):
        if not isinstance(trees.get(key), bool):
            raise _bad(f"trees.{key}", "should be true or false")
    for key in ("n_features", "n_trees", "per_stage", "n_outputs"):
        _count(trees.get(key), f"trees.{key}")
    rate = trees.get("learning_rate", 1.0)
    if not isinstance(rate, (int, float)) or isinstance(rate, bool):
        raise _bad("trees.learning_rate", "should be a number")
    if not isinstance(trees.get("object_labels", False), bool):
        raise _bad("trees.object_labels", "should be true or false")
    names = trees.get("feature_names")
    if names is not None and (not isinstance(names, list) or len(names) != trees["n_features"] or not all(
            isinstance(n, str) and len(n) <= _MAX_TEXT for n in names)):
        raise _bad("trees.feature_names", "should list the n_features column names")
    methods = trees.get("methods")
    if not isinstance(methods, list) or not methods or not all(m in _TREE_METHODS for m in methods):
        raise _bad("trees.methods", f"should list some of {', '.join(_TREE_METHODS)}")
    members = trees.get("members")
    if not isinstance(members, dict) or not all(
            k in _TREE_MEMBERS and v == f"trees/{k}.npy" for k, v in members.items()):
        raise _bad("trees.members", "should map array names to their trees/<name>.npy members")
    needed = set(_TREE_MEMBERS[:6]) | ({"classes"} if trees["classifier"] else set()) | (
        {"baseline"} if trees["family"] != "forest" else set())
    if not needed <= set(members):
        raise _bad("trees.members", f"lacks {', '.join(sorted(needed - set(members)))}")


def _dtype_ok(text: str) -> bool:
    if text == "object":
        return True
    try:
        dtype = np.dtype(text)
    except (TypeError, ValueError, SyntaxError, OverflowError, MemoryError, RecursionError):
        return False
    return dtype.kind in "biufcUSMmO" and dtype.itemsize <= 1 << 16 and not dtype.fields


def _plain_label(value: Any) -> bool:
    """A class label: a plain scalar, or (multi-output classifiers) a list of them."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, list) and all(v is None or isinstance(v, (bool, int, float, str)) for v in value)


def check_signature(raw: Any) -> Signature | None:
    """The ``signature`` section as a :class:`Signature`: names are strings, dtypes ones numpy knows,
    shapes lists of at most 32 integers >= -1, classes plain scalars."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad("signature", "should be an object")
    for side in ("inputs", "outputs"):
        tensors = raw.get(side, [])
        if not isinstance(tensors, list) or len(tensors) > MAX_LIST:
            raise _bad(f"signature.{side}", "should be a list")
        for i, t in enumerate(tensors):
            where = f"signature.{side}[{i}]"
            if not isinstance(t, dict) or not isinstance(t.get("name"), str) or len(t["name"]) > 1024:
                raise _bad(where, "should be an object with a name")
            if not isinstance(t.get("dtype"), str) or not _dtype_ok(t["dtype"]):
                raise _bad(f"{where}.dtype", "should be a numpy dtype")
            shape = t.get("shape")
            if not isinstance(shape, list) or len(shape) > 32 or not all(
                    isinstance(d, int) and not isinstance(d, bool) and -1 <= d < 1 << 40 for d in shape):
                raise _bad(f"{where}.shape", "should be a list of at most 32 integers >= -1")
            columns = t.get("columns")
            if columns is not None and (not isinstance(columns, list) or len(columns) > MAX_LIST or not all(
                    isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("dtype"), str)
                    for c in columns)):
                raise _bad(f"{where}.columns", "should be a list of {name, dtype} objects")
    classes = raw.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(_plain_label(c) for c in classes)):
        raise _bad("signature.classes", "should be a list of plain values (or, per output, lists of them)")
    try:
        return Signature.from_dict(raw)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise CapsuleFormatError(f"capsule.json 'signature' is malformed: {exc!r}") from exc


def check_sections(data: Mapping[str, Any]) -> None:
    """Check every section but ``files`` and ``signature`` (which the reader parses itself)."""
    _depth(data)
    _text(data.get("name"), "name", optional=False, limit=1024)
    _text(data.get("created_at"), "created_at", optional=False, limit=64)
    for key, check in (("model", check_model), ("format", check_format), ("environment", check_environment)):
        value = data.get(key)
        if not isinstance(value, dict):
            raise _bad(key, "should be an object")
        check(value)
    if data.get("provenance") is not None:
        if not isinstance(data["provenance"], dict):
            raise _bad("provenance", "should be an object")
        check_provenance(data["provenance"])
    if data.get("sample") is not None:
        check_sample_section(data["sample"])
    check_onnx(data.get("onnx"))
    check_trees(data.get("trees"))
    if not isinstance(data.get("metadata", {}), (dict, type(None))):
        raise _bad("metadata", "should be an object")
