"""``onnx``: an ONNX graph, run by onnxruntime. No Python code is involved in loading it.

Member: ``model/model.onnx``. The audit parses the graph (protobuf, data only, with the fields declared
in :mod:`.onnx_messages`: the ``onnx`` package is not imported) and refuses what a
self-contained capsule must not hold: tensors stored in external files (their paths could point anywhere
on disk) and operators from domains onnxruntime does not implement itself (they would need a custom-op
library). It imports no Python names. Loading returns an ``onnxruntime.InferenceSession`` on the CPU
(CUDA with ``device="cuda"`` when onnxruntime has it). Plain ``*.onnx`` files load the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import CapsuleFormatError, UnsupportedModelError
from ..frameworks.onnx import is_onnx_model, make_session, model_bytes
from ._members import main_member
from .base import LoadOptions, MemberSink, MemberSource, SaveResult
from .onnx_messages import EXTERNAL, model_class

__all__ = ["FORMATS", "ONNXFormat", "check_graph", "checked_session"]

MEMBER = "model/model.onnx"
MAX_ITEMS = 10_000_000
"""Graphs, nodes and attributes one model may hold (the walk's budget)."""
KNOWN_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc",
                           "ai.onnx.preview.training", "com.ms.internal.nhwc"})


@dataclass
class _Walk:
    """What a walk of a whole ONNX model found."""

    tensors: list[Any] = field(default_factory=list)
    domains: set[str] = field(default_factory=set)
    graph_nodes: int = 0


def _walk(proto: Any) -> _Walk:
    """Every tensor and operator domain reachable from ``proto`` (a ModelProto): the main graph, training
    graphs, model-local functions (their bodies and their attributes' default values, which a runtime
    uses where a call leaves an attribute out), every subgraph of every attribute at any depth; the
    tensors of initializers, sparse initializers (values and indices) and attributes of any declared type
    (a runtime may read whichever field is set, whatever ``attr.type`` claims). Iterative, with a count
    budget."""
    found = _Walk()
    graphs: list[Any] = [proto.graph, *[g for info in proto.training_info
                                        for g in (info.initialization, info.algorithm)]]
    nodes: list[tuple[Any, bool]] = [(n, False) for f in proto.functions for n in f.node]
    attributes: list[Any] = [a for f in proto.functions for a in f.attribute_proto]
    seen = 0
    while graphs or nodes or attributes:
        seen += 1
        if seen > MAX_ITEMS:
            raise CapsuleFormatError(f"the ONNX model holds more than {MAX_ITEMS} graphs, nodes and attributes; "
                                     "refusing it.")
        if graphs:
            graph = graphs.pop()
            found.tensors += list(graph.initializer)
            for sparse in graph.sparse_initializer:
                found.tensors += [sparse.values, sparse.indices]
            nodes += [(n, True) for n in graph.node]
        elif nodes:
            node, in_graph = nodes.pop()
            found.graph_nodes += in_graph
            found.domains.add(node.domain)
            attributes += list(node.attribute)
        else:
            attr = attributes.pop()
            if attr.HasField("t"):
                found.tensors.append(attr.t)
            found.tensors += list(attr.tensors)
            for sparse in [attr.sparse_tensor, *attr.sparse_tensors]:
                found.tensors += [sparse.values, sparse.indices]
            if attr.HasField("g"):
                graphs.append(attr.g)
            graphs += list(attr.graphs)
    return found


def check_graph(data: bytes) -> dict[str, Any]:
    """Parse an ONNX model and refuse external data anywhere and unknown operator domains; returns a summary.

    Every graph is walked: the main graph, subgraphs of control-flow nodes at any depth, model-local
    functions (with their default attribute values) and training graphs; every tensor is checked:
    initializers, both halves of sparse initializers, and tensors held by attributes (whatever type the
    attribute declares)."""
    from google.protobuf.message import DecodeError

    proto = model_class()()
    try:
        proto.ParseFromString(data)
    except (DecodeError, ValueError, RecursionError, MemoryError, TypeError) as exc:
        raise CapsuleFormatError(f"not a valid ONNX model: {type(exc).__name__}: {str(exc)[:200]}") from exc
    walk = _walk(proto)
    for tensor in walk.tensors:
        if tensor.data_location == EXTERNAL or len(tensor.external_data):
            raise CapsuleFormatError(
                f"the ONNX graph keeps tensor {tensor.name[:80]!r} in an external file; a capsule must be "
                "self-contained (external data could name any file on disk). Re-save it with "
                "onnx.save_model(model, path, save_as_external_data=False)."
            )
    local = {f.domain for f in proto.functions}
    # a domain that is not UTF-8 reads as bytes (proto2 strings): sorted by repr, refused like any unknown one
    unknown = sorted((d for d in walk.domains if d not in KNOWN_DOMAINS and d not in local), key=repr)
    if unknown:
        raise CapsuleFormatError(
            f"the ONNX graph uses operators from domain(s) {[d[:80] for d in unknown[:5]]}, which need a custom-op "
            "library; modelcapsule loads only graphs onnxruntime runs by itself."
        )
    return {"opset": {o.domain or "ai.onnx": int(o.version) for o in proto.opset_import}, "nodes": walk.graph_nodes,
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
        return checked_session(source.read(main_member(source, details, MEMBER)), options.device)


def checked_session(data: bytes, device: str | None, *, keep_bytes: bool = True) -> Any:
    """An onnxruntime session for ``data`` once :func:`check_graph` passed it; the one way a capsule's graph
    (its payload or its ONNX export) becomes a session. What onnxruntime refuses is a
    :class:`~modelcapsule.errors.CapsuleFormatError`, like any other malformed member."""
    from onnxruntime.capi.onnxruntime_pybind11_state import (
        Fail,
        InvalidArgument,
        InvalidGraph,
        RuntimeException,
    )
    from onnxruntime.capi.onnxruntime_pybind11_state import (
        NotImplemented as OrtNotImplemented,
    )

    check_graph(data)
    try:
        return make_session(data, device, keep_bytes=keep_bytes)
    except (Fail, InvalidArgument, InvalidGraph, OrtNotImplemented, RuntimeException) as exc:
        raise CapsuleFormatError(f"onnxruntime refused the graph: {exc}") from exc


FORMATS = (ONNXFormat(),)
