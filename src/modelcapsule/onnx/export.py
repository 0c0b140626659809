"""ONNX export at save time (``save(..., onnx=True)``), checked against the golden sample.

Each framework has its converter: scikit-learn through skl2onnx (classifiers without ZipMap, nearest
neighbours with ``optim="cdist"``, the fast conversion), XGBoost and LightGBM through onnxmltools,
PyTorch through ``torch.onnx``, Keras through ``torch.onnx`` on the PyTorch backend and
``model.export(format="onnx")`` on the others. Array inputs become one
float32 input named ``input``; DataFrame inputs become one ``[N, 1]`` input per column (named after the
column), as skl2onnx expects for column transformers.

The export is run on the golden sample and compared with the Python outputs (methods the graph has no
output for, such as ``decision_function`` next to ``predict_proba``, are listed under ``not_exported``).
ONNX computes in float32 where Python often uses float64, so floating outputs are compared with
``rtol=1e-4, atol=1e-5``
(:data:`TOLERANCE`) and the largest differences are recorded; for label outputs the number of rows whose
label changed (float32 trees can flip a label near a threshold) is recorded, never hidden. The report
becomes the manifest's ``onnx`` section; the graph becomes the capsule member ``onnx/model.onnx``.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError
from ..formats.base import MemberSink

__all__ = ["ONNX_MEMBER", "TOLERANCE", "check_export", "export_onnx", "export_to_capsule"]

ONNX_MEMBER = "onnx/model.onnx"
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
"""How far a floating ONNX output may be from the Python one and still count as reproducing it."""

Exporter = Callable[[Any, Mapping[str, Any]], tuple[bytes, str]]


def _framework_name(framework: Any) -> str:
    return framework if isinstance(framework, str) else str(framework.name)


def _single_array(inputs: Mapping[str, Any], what: str) -> np.ndarray[Any, Any]:
    if len(inputs) != 1:
        raise UnsupportedModelError(f"ONNX export of {what} models takes one input array, not {list(inputs)}")
    (value,) = inputs.values()
    if type(value).__name__ == "DataFrame":
        value = value.to_numpy()
    return np.asarray(value)


def _numpy_dtype(dtype: Any) -> np.dtype[Any]:
    """The numpy dtype of a column; pandas' own dtypes (string, category) count as text."""
    try:
        return np.dtype(str(dtype)) if not isinstance(dtype, np.dtype) else dtype
    except TypeError:
        return np.dtype(object)


def _sklearn_types(inputs: Mapping[str, Any]) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import BooleanTensorType, FloatTensorType, Int64TensorType, StringTensorType

    def tensor_type(dtype: np.dtype[Any], shape: list[int | None]) -> Any:
        if dtype.kind == "f":
            return FloatTensorType(shape)
        if dtype.kind in "iu":
            return Int64TensorType(shape)
        if dtype.kind == "b":
            return BooleanTensorType(shape)
        return StringTensorType(shape)

    (value,) = inputs.values() if len(inputs) == 1 else (None,)
    if value is None:
        raise UnsupportedModelError(f"ONNX export takes one input (array or DataFrame), not {list(inputs)}")
    if type(value).__name__ == "DataFrame":
        return [(str(col), tensor_type(_numpy_dtype(value[col].dtype), [None, 1])) for col in value.columns]
    array = np.asarray(value)
    kind = array.dtype if array.dtype.kind != "i" else np.dtype(np.float64)  # numeric arrays go in as float32
    return [("input", tensor_type(kind, [None, *array.shape[1:]]))]


def _estimators(model: Any) -> list[Any]:
    """``model`` and every estimator nested in it (pipeline steps, column transformers, ensembles)."""
    found, stack, seen = [], [model], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if hasattr(obj, "get_params") and hasattr(obj, "fit"):
            found.append(obj)
            stack.extend(v for v in obj.get_params(deep=False).values() if isinstance(v, (list, tuple))
                         or hasattr(v, "get_params"))
            stack.extend(getattr(obj, "estimators_", []) if isinstance(getattr(obj, "estimators_", None), list) else [])
            stack.extend(t for _, t, *_ in getattr(obj, "transformers_", []))
        elif isinstance(obj, (list, tuple)):
            stack.extend(obj)
    return found


def _export_sklearn(model: Any, inputs: Mapping[str, Any]) -> tuple[bytes, str]:
    import skl2onnx
    from sklearn.base import is_classifier

    options: dict[Any, dict[str, Any]] = {}
    for est in _estimators(model):
        opts: dict[str, Any] = {}
        if is_classifier(est) and type(est).__name__ not in ("Pipeline", "GridSearchCV", "RandomizedSearchCV"):
            opts["zipmap"] = False
        if type(est).__name__ in ("KNeighborsClassifier", "KNeighborsRegressor", "NearestNeighbors"):
            opts["optim"] = "cdist"
        if opts:
            options[id(est)] = opts
    try:
        proto = skl2onnx.convert_sklearn(model, initial_types=_sklearn_types(inputs), options=options or None)
    except (RuntimeError, ValueError, TypeError, NameError, NotImplementedError) as exc:
        raise UnsupportedModelError(f"skl2onnx cannot convert {type(model).__name__}: {exc}") from exc
    return proto.SerializeToString(), f"skl2onnx {skl2onnx.__version__}"


def _float_input(inputs: Mapping[str, Any], what: str) -> list[tuple[str, Any]]:
    from onnxmltools.convert.common.data_types import FloatTensorType

    array = _single_array(inputs, what)
    return [("input", FloatTensorType([None, *array.shape[1:]]))]


def _export_xgboost(model: Any, inputs: Mapping[str, Any]) -> tuple[bytes, str]:
    import onnxmltools

    try:
        proto = onnxmltools.convert_xgboost(model, initial_types=_float_input(inputs, "XGBoost"))
    except (RuntimeError, ValueError, TypeError, AttributeError, NotImplementedError) as exc:
        raise UnsupportedModelError(f"onnxmltools cannot convert this XGBoost model: {exc}") from exc
    return proto.SerializeToString(), f"onnxmltools {onnxmltools.__version__}"


def _export_lightgbm(model: Any, inputs: Mapping[str, Any]) -> tuple[bytes, str]:
    import onnxmltools

    try:
        proto = onnxmltools.convert_lightgbm(model, initial_types=_float_input(inputs, "LightGBM"), zipmap=False)
    except (RuntimeError, ValueError, TypeError, AttributeError, NotImplementedError) as exc:
        raise UnsupportedModelError(f"onnxmltools cannot convert this LightGBM model: {exc}") from exc
    return proto.SerializeToString(), f"onnxmltools {onnxmltools.__version__}"


def _torch_onnx(module: Any, example: Any, output: str) -> bytes:
    """Export a torch module with the TorchScript-based exporter (the newer one needs onnxscript)."""
    import torch
    from torch.jit._trace import TracerWarning

    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # that exporter is deprecated upstream
            # Keras layers read shapes as Python ints while tracing; check_export runs the graph on one row
            # as well, so a graph that baked the batch size in is reported
            warnings.simplefilter("ignore", TracerWarning)
            torch.onnx.export(module, (example,), buffer,  # type: ignore[arg-type]  # file-likes work too
                              input_names=["input"], output_names=[output],
                              dynamic_axes={"input": {0: "batch"}, output: {0: "batch"}}, dynamo=False)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise UnsupportedModelError(f"torch.onnx cannot export {type(module).__name__}: {exc}") from exc
    return buffer.getvalue()


def _export_torch(model: Any, inputs: Mapping[str, Any]) -> tuple[bytes, str]:
    import torch

    from ..frameworks.torch import is_torch_module, to_tensor

    if not is_torch_module(model):
        raise UnsupportedModelError("ONNX export of torch.export programs needs onnxscript; export the module")
    example = to_tensor(model, _single_array(inputs, "PyTorch"))
    was_training = model.training
    model.eval()
    try:
        return _torch_onnx(model, example, "forward"), f"torch.onnx {torch.__version__}"
    finally:
        if was_training:
            model.train()


def _export_keras(model: Any, inputs: Mapping[str, Any]) -> tuple[bytes, str]:
    from ..frameworks.keras import import_keras

    keras = import_keras()
    array = _single_array(inputs, "Keras").astype(keras.config.floatx())
    backend = keras.backend.backend()
    model(array[:1], training=False)  # Keras exports only models that have been called
    if backend == "torch":  # a Keras model on the torch backend is a torch module
        import torch

        return _torch_onnx(model, torch.from_numpy(array), "predict"), f"keras {keras.__version__} via torch.onnx"
    with tempfile.TemporaryDirectory(prefix="modelcapsule-onnx-") as tmp:
        path = os.path.join(tmp, "model.onnx")
        try:
            model.export(path, format="onnx", verbose=False)
        except (RuntimeError, TypeError, ValueError, ImportError) as exc:
            raise UnsupportedModelError(f"Keras cannot export this model to ONNX: {exc}") from exc
        with open(path, "rb") as fh:
            return fh.read(), f"keras {keras.__version__} ({backend} backend)"


def _export_onnx_model(model: Any, inputs: Mapping[str, Any]) -> tuple[bytes, str]:
    from ..frameworks.onnx import model_bytes

    return model_bytes(model), "unchanged"


_EXPORTERS: dict[str, Exporter] = {
    "sklearn": _export_sklearn,
    "xgboost": _export_xgboost,
    "lightgbm": _export_lightgbm,
    "torch": _export_torch,
    "keras": _export_keras,
    "onnx": _export_onnx_model,
}


def _graph_io(data: bytes) -> tuple[list[dict[str, Any]], list[str], dict[str, int]]:
    import onnx

    proto = onnx.load_model_from_string(data)
    initializers = {t.name for t in proto.graph.initializer}
    specs = []
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        specs.append({"name": value.name, "elem_type": onnx.TensorProto.DataType.Name(tensor.elem_type).lower(),
                      "shape": [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]})
    opset = {o.domain or "ai.onnx": int(o.version) for o in proto.opset_import}
    return specs, [o.name for o in proto.graph.output], opset


def export_onnx(model: Any, framework: Any, sample_inputs: Any) -> tuple[bytes, dict[str, Any]]:
    """Convert ``model`` to ONNX; returns the graph and a report (converter, opset, inputs, outputs).

    ``framework`` is a :class:`~modelcapsule.frameworks.Framework` or its name; ``sample_inputs`` is
    ``{name: array or DataFrame}`` (an array alone is taken as the input ``"input"``), used for the
    input types. The output mapping (``{onnx output: method}``) is positional here and refined against
    the golden outputs by :func:`check_export`.
    """
    name = _framework_name(framework)
    exporter = _EXPORTERS.get(name)
    if exporter is None:
        raise UnsupportedModelError(f"no ONNX exporter for {name} models; supported: {', '.join(_EXPORTERS)}")
    if sample_inputs is None:
        raise UnsupportedModelError("ONNX export needs a sample (save(..., sample=X, onnx=True)) for input types")
    inputs = sample_inputs if isinstance(sample_inputs, Mapping) else {"input": sample_inputs}
    with warnings.catch_warnings():
        # skl2onnx passes numpy booleans where protobuf 6 wants ints (third-party noise, harmless today)
        warnings.filterwarnings("ignore", message=".*Expected an int, got a boolean", category=DeprecationWarning)
        data, converter = exporter(model, inputs)
    specs, outputs, opset = _graph_io(data)
    methods = list(framework.methods(model)) if not isinstance(framework, str) else []
    mapping = dict(zip(outputs, methods, strict=False)) if methods else {o: o for o in outputs}
    report = {"member": ONNX_MEMBER, "converter": converter, "opset": opset, "inputs": specs,
              "input_layout": "columns" if len(specs) > 1 else "array", "outputs": mapping}
    return data, report


def _compare(expected: np.ndarray[Any, Any], got: np.ndarray[Any, Any]) -> dict[str, Any]:
    rows = int(expected.shape[0]) if expected.ndim else 1
    if got.shape != expected.shape:
        if got.size == expected.size:
            got = got.reshape(expected.shape)
        else:
            return {"rows": rows, "comparable": False,
                    "reason": f"shape {list(got.shape)} instead of {list(expected.shape)}", "within_tolerance": False}
    if expected.dtype.kind in "fc" and got.dtype.kind in "fcbiu":
        exp = expected.astype(np.float64)
        act = got.astype(np.float64)
        abs_diff = np.abs(act - exp)
        rel = abs_diff / np.maximum(np.abs(exp), np.finfo(np.float64).tiny)
        close = np.isclose(act, exp, equal_nan=True, **TOLERANCE)
        return {"rows": rows, "max_abs_diff": float(np.nanmax(abs_diff)) if abs_diff.size else 0.0,
                "max_rel_diff": float(np.nanmax(rel)) if rel.size else 0.0,
                "within_tolerance": bool(close.all())}
    same = np.asarray(got.astype(object) == expected.astype(object), dtype=bool)
    row_same = same.reshape(rows, -1).all(axis=1) if same.ndim else same.reshape(1)
    flipped = np.flatnonzero(~row_same)
    return {"rows": rows, "label_flips": int(flipped.size), "flipped_rows": flipped[:20].tolist(),
            "within_tolerance": bool(flipped.size == 0)}


def check_export(data: bytes, inputs: Mapping[str, Any], outputs: Mapping[str, Any],
                 mapping: Mapping[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    """Run the graph on the golden sample and compare with the Python outputs, method by method.

    Returns the refined ``{onnx output: method}`` mapping (an output is matched to a method by position,
    or else to the first method whose output has the same shape) and ``{method: comparison}``.
    """
    from ..frameworks.onnx import feed_for, make_session, onnx_to_numpy

    session = make_session(data)
    names = [o.name for o in session.get_outputs()]
    feed = feed_for(session, inputs if len(inputs) > 1 else next(iter(inputs.values())))
    results = dict(zip(names, (onnx_to_numpy(v) for v in session.run(names, feed)), strict=True))
    refined: dict[str, str] = {}
    free = list(names)
    for method, value in outputs.items():
        expected = np.asarray(value)
        positional = [o for o, m in mapping.items() if m == method and o in free]
        candidates = positional + [o for o in free if o not in positional]
        for out in candidates:
            if results[out].size == expected.size:
                refined[out] = method
                free.remove(out)
                break
    checks: dict[str, Any] = {}
    by_method = {m: o for o, m in refined.items()}
    for method, expected in outputs.items():
        if method not in by_method:
            checks[method] = {"comparable": False, "reason": "no ONNX output of the same size",
                              "within_tolerance": False}
            continue
        out = by_method[method]
        checks[method] = {"onnx_output": out, **_compare(np.asarray(expected), results[out])}
    return refined, checks


def batch_independent(data: bytes, inputs: Mapping[str, Any]) -> bool:
    """Whether the graph gives the first row the same outputs alone as inside the whole sample (a traced
    export can bake the example's batch size into its shapes)."""
    from ..frameworks.onnx import feed_for, make_session, onnx_to_numpy

    session = make_session(data)
    feed = feed_for(session, inputs if len(inputs) > 1 else next(iter(inputs.values())))
    whole = [onnx_to_numpy(v) for v in session.run(None, feed)]
    try:
        alone = [onnx_to_numpy(v) for v in session.run(None, {k: v[:1] for k, v in feed.items()})]
    except Exception:  # onnxruntime errors share no base class: any failure answers "no"
        return False
    for a, w in zip(alone, whole, strict=True):
        head = w[:1]
        if a.shape != head.shape:
            return False
        if a.dtype.kind in "fc" and not np.allclose(a, head, equal_nan=True, **TOLERANCE):
            return False
        if a.dtype.kind not in "fc" and not np.array_equal(a, head):
            return False
    return True


def export_to_capsule(model: Any, framework: Any, inputs: Mapping[str, Any] | None, outputs: Mapping[str, Any],
                      writer: MemberSink) -> dict[str, Any]:
    """Export ``model``, check it on the golden sample, write ``onnx/model.onnx``; returns the manifest section.

    Called by :func:`modelcapsule.save` with ``onnx=True``.
    """
    data, report = export_onnx(model, framework, inputs)
    if inputs is not None and outputs:
        mapping, checks = check_export(data, inputs, outputs, report["outputs"])
        report["outputs"] = mapping
        report["check"] = checks
        report["tolerance"] = dict(TOLERANCE)
        exported = {m: c for m, c in checks.items() if c.get("comparable", True)}
        report["not_exported"] = sorted(set(checks) - set(exported))
        report["batch_independent"] = batch_independent(data, inputs)
        report["reproduces_sample"] = (bool(exported) and report["batch_independent"]
                                       and all(c["within_tolerance"] for c in exported.values()))
    writer.add(ONNX_MEMBER, data)
    return report
