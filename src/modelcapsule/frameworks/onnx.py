"""ONNX: graphs run by onnxruntime (``onnx.ModelProto``, a path to a ``.onnx`` file, or an
``onnxruntime.InferenceSession`` loaded from a capsule).

The prediction methods are the graph's outputs, by name. A single-input graph takes the sample array
(cast to the input's element type); a multi-input graph takes a mapping of input name to array. An
output that is a sequence of maps (scikit-learn's ZipMap) comes back as a 2-D array, columns in key order.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import UnsupportedModelError
from ..types import Signature
from ._methods import class_names
from .predictor import MethodPredictor

__all__ = ["FRAMEWORKS", "ONNXFramework", "feed_for", "is_onnx_model", "model_bytes", "onnx_to_numpy", "session_for"]

SESSION = "onnxruntime.capi.onnxruntime_inference_collection.InferenceSession"
PROTO = "onnx.onnx_ml_pb2.ModelProto"
BYTES_ATTR = "_modelcapsule_model_bytes"
"""Attribute under which sessions loaded from a capsule keep their model bytes (so they can be re-saved)."""

_ONNX_TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(uint16)": np.uint16, "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_, "tensor(string)": np.str_,
}
_SESSIONS: OrderedDict[str, Any] = OrderedDict()
_MAX_CACHED = 8


def is_onnx_model(model: Any) -> bool:
    if isinstance(model, (str, os.PathLike)):
        return Path(model).suffix.lower() == ".onnx" and Path(model).is_file()
    return bool({SESSION, PROTO} & class_names(model))


def model_bytes(model: Any) -> bytes:
    """The serialized graph of ``model`` (a ModelProto, a ``.onnx`` path, or a session loaded by modelcapsule)."""
    if isinstance(model, (str, os.PathLike)):
        return Path(model).read_bytes()
    if PROTO in class_names(model):
        return bytes(model.SerializeToString())
    data = getattr(model, BYTES_ATTR, None)
    if isinstance(data, bytes):
        return data
    raise UnsupportedModelError(
        "an onnxruntime.InferenceSession does not expose its graph; save the ONNX file's path or the "
        "onnx.ModelProto instead."
    )


def _thread_limit() -> int | None:
    """``OMP_NUM_THREADS``, which OpenMP and BLAS follow, as the session's intra-op thread count.

    onnxruntime's own default is a pool of one thread per core, whatever that variable says; ``capsule
    serve`` sets it to ``--threads`` (one by default) so that workers × threads stay within the cores.
    A pool also costs every small call: a served 100-tree forest takes 13 µs for one row with the
    default pool on two cores and 6 µs on one thread, and is no faster with the pool up to 16 rows."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def make_session(data: bytes, device: str | None = None, *, keep_bytes: bool = True) -> Any:
    """An onnxruntime session for ``data`` on the CPU (or CUDA for ``device="cuda..."`` when available).

    ``keep_bytes`` keeps ``data`` on the session so that :func:`model_bytes` can save it again (a session a
    user loaded); a session that only serves does without: onnxruntime holds the graph in its own form,
    and the serialized copy would stay resident for the life of the server. The session's intra-op
    threads follow ``OMP_NUM_THREADS`` when it is set (see :func:`_thread_limit`)."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device and device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: converters' loose output shapes make ORT warn on every run
    # no CPU memory arena: the arena keeps its high-water mark for the life of the session (~1.2 MiB of a
    # served 100-tree forest's RSS) and bought no speed here (1 row 13.3 µs both ways, 64 rows the same)
    options.enable_cpu_mem_arena = False
    threads = _thread_limit()
    if threads is not None:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(data, sess_options=options, providers=providers)
    if keep_bytes:
        setattr(session, BYTES_ATTR, data)
    else:
        # onnxruntime's wrapper keeps the bytes too, only to rebuild the session on another provider
        # after a provider fails mid-run; without that fallback (an error instead) they can go
        session.disable_fallback()
        if getattr(session, "_model_bytes", None) is data:
            session._model_bytes = None
    return session


def session_for(model: Any) -> Any:
    """The session to run ``model`` with (cached by content for protos and paths)."""
    if SESSION in class_names(model):
        return model
    data = model_bytes(model)
    key = hashlib.sha256(data).hexdigest()
    if key not in _SESSIONS:
        _SESSIONS[key] = make_session(data)
        while len(_SESSIONS) > _MAX_CACHED:
            _SESSIONS.popitem(last=False)
    _SESSIONS.move_to_end(key)
    return _SESSIONS[key]


def _cast(value: Any, onnx_type: str) -> np.ndarray[Any, Any]:
    array = np.asarray(value)
    dtype = _ONNX_TYPES.get(onnx_type)
    if dtype is np.str_:
        return array.astype(str).astype(object)
    return array if dtype is None or array.dtype == dtype else array.astype(dtype)


def feed_for(session: Any, inputs: Any) -> dict[str, np.ndarray[Any, Any]]:
    """The ``{input name: array}`` feed for ``session`` from one array, a mapping, or a DataFrame."""
    specs = session.get_inputs()
    if isinstance(inputs, Mapping):
        missing = [s.name for s in specs if s.name not in inputs]
        if missing:
            raise KeyError(f"missing ONNX input(s) {missing}")
        return {s.name: _cast(inputs[s.name], s.type) for s in specs}
    if type(inputs).__name__ == "DataFrame" and len(specs) > 1:
        return {s.name: _cast(np.asarray(inputs[s.name]).reshape(-1, 1), s.type) for s in specs}
    if len(specs) != 1:
        raise TypeError(f"this ONNX graph takes {len(specs)} inputs ({[s.name for s in specs]}); pass a mapping")
    return {specs[0].name: _cast(inputs, specs[0].type)}


def onnx_to_numpy(value: Any) -> np.ndarray[Any, Any]:
    """An onnxruntime output as an array (a sequence of maps becomes rows of values in key order)."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        keys = sorted(value[0])
        return np.asarray([[row[k] for k in keys] for row in value])
    return np.asarray(value)


class ONNXFramework:
    """ONNX graphs, run by onnxruntime."""

    name: ClassVar[str] = "onnx"
    methods_are_outputs: ClassVar[bool] = True
    """Methods are graph output names, run with ``session.run``: no attribute of any object is looked up."""

    def matches(self, model: Any) -> bool:
        return is_onnx_model(model)

    def describe(self, model: Any) -> dict[str, Any]:
        session = session_for(model)
        meta = session.get_modelmeta()
        return {"framework": self.name, "class": "onnx.ModelProto", "task": "graph", "methods": self.methods(model),
                "params": {"producer": meta.producer_name, "graph": meta.graph_name,
                           "inputs": [{"name": i.name, "type": i.type, "shape": [d if isinstance(d, int) else -1
                                                                               for d in i.shape]}
                                      for i in session.get_inputs()]}}

    def methods(self, model: Any) -> list[str]:
        return [o.name for o in session_for(model).get_outputs()]

    def call(self, model: Any, method: str, inputs: Any) -> np.ndarray[Any, Any]:
        session = session_for(model)
        if method not in {o.name for o in session.get_outputs()}:
            raise ValueError(f"the ONNX graph has no output {method!r}")
        return onnx_to_numpy(session.run([method], feed_for(session, inputs))[0])

    def packages(self, model: Any) -> list[str]:
        return ["onnxruntime", "onnx", "numpy"]

    def formats(self, model: Any) -> list[str]:
        return ["onnx"]

    def predictor(self, model: Any, signature: Signature) -> MethodPredictor:
        return MethodPredictor(model, signature, self.call)


FRAMEWORKS = (ONNXFramework(),)
