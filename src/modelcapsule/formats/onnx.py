"""``onnx``: an ONNX graph, run by onnxruntime. No Python code is involved in loading it.

Member: ``model/model.onnx``. The audit parses the graph (protobuf, data only) and refuses what a
self-contained capsule must not hold: tensors stored in external files (their paths could point anywhere
on disk) and operators from domains onnxruntime does not implement itself (they would need a custom-op
library). It imports no Python names. Loading returns an ``onnxruntime.InferenceSession`` on the CPU
(CUDA with ``device="cuda"`` when onnxruntime has it). Plain ``*.onnx`` files load the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import CapsuleFormatError, UnsupportedModelError
from ..frameworks.onnx import is_onnx_model, make_session, model_bytes
from ._members import main_member
from .base import LoadOptions, MemberSink, MemberSource, SaveResult

__all__ = ["FORMATS", "ONNXFormat", "check_graph"]

MEMBER = "model/model.onnx"
KNOWN_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc",
                           "ai.onnx.preview.training", "com.ms.internal.nhwc"})


def check_graph(data: bytes) -> dict[str, Any]:
    """Parse an ONNX model and refuse external data and unknown operator domains; returns a summary."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load_model_from_string(data)
    except (DecodeError, ValueError) as exc:
        raise CapsuleFormatError(f"not a valid ONNX model: {exc}") from exc
    graphs = [proto.graph]
    domains: set[str] = set()
    n_nodes = 0
    while graphs:
        graph = graphs.pop()
        tensors = list(graph.initializer) + [t.values for t in graph.sparse_initializer]
        for node in graph.node:
            n_nodes += 1
            domains.add(node.domain)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    graphs.append(attr.g)
                if attr.type == onnx.AttributeProto.TENSOR:
                    tensors.append(attr.t)
                graphs.extend(attr.graphs)
                tensors.extend(attr.tensors)
        for tensor in tensors:
            if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
                raise CapsuleFormatError(
                    f"the ONNX graph keeps tensor {tensor.name!r} in an external file; a capsule must be "
                    "self-contained. Re-save it with onnx.save_model(model, path, save_as_external_data=False)."
                )
    local = {f.domain for f in proto.functions}
    unknown = sorted(d for d in domains if d not in KNOWN_DOMAINS and d not in local)
    if unknown:
        raise CapsuleFormatError(
            f"the ONNX graph uses operators from domain(s) {unknown}, which need a custom-op library; "
            "modelcapsule loads only graphs onnxruntime runs by itself."
        )
    return {"opset": {o.domain or "ai.onnx": int(o.version) for o in proto.opset_import}, "nodes": n_nodes,
            "producer": f"{proto.producer_name} {proto.producer_version}".strip()}


class ONNXFormat:
    """ONNX graphs for onnxruntime."""

    name: ClassVar[str] = "onnx"
    runs_code: ClassVar[bool] = False
    safety: ClassVar[int] = 0
    extensions: ClassVar[tuple[str, ...]] = (".onnx",)

    def supports(self, model: Any) -> bool:
        return is_onnx_model(model)

    def save(self, model: Any, sink: MemberSink) -> SaveResult:
        if not is_onnx_model(model):
            raise UnsupportedModelError(f"the onnx format stores ONNX graphs, not {type(model)}")
        data = model_bytes(model)
        summary = check_graph(data)
        sink.add(MEMBER, data)
        return SaveResult(details={"member": MEMBER, **summary}, types=[])

    def audit(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> list[str]:
        check_graph(source.read(main_member(source, details, MEMBER)))
        return []

    def load(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> Any:
        from onnxruntime.capi.onnxruntime_pybind11_state import (
            Fail,
            InvalidArgument,
            InvalidGraph,
            RuntimeException,
        )
        from onnxruntime.capi.onnxruntime_pybind11_state import (
            NotImplemented as OrtNotImplemented,
        )

        data = source.read(main_member(source, details, MEMBER))
        check_graph(data)
        try:
            return make_session(data, options.device)
        except (Fail, InvalidArgument, InvalidGraph, OrtNotImplemented, RuntimeException) as exc:
            raise CapsuleFormatError(f"onnxruntime refused the graph: {exc}") from exc


FORMATS = (ONNXFormat(),)
