"""ONNX files that keep a tensor "in an external file" are refused wherever the tensor hides.

External data names a path that onnxruntime opens when the session is built: a graph can read any
file the loading user can (``/etc/shadow``, a private key) into a constant and hand it back as an
output. The tensor can sit in an initializer, either half of a sparse initializer, a node attribute of
any declared type, a subgraph of a control-flow node at any depth, a model-local function (its body or
its attributes' default values), or a training graph. Each case below is a real ONNX file; the canary
is a secret file whose bytes must never come back, and each must be refused before any session exists
(``make_session`` is never called).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

import modelcapsule as mc  # noqa: E402
from modelcapsule.errors import CapsuleFormatError  # noqa: E402
from modelcapsule.formats.onnx import check_graph  # noqa: E402

SECRET = b"-----BEGIN PRIVATE KEY----- canary"


def external(tensor: Any, secret: Path) -> Any:
    """Mark ``tensor`` as stored in ``secret`` (what an attacker writes into the protobuf)."""
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.ClearField("int64_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", str(secret)), ("offset", "0"), ("length", str(len(SECRET)))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def weights() -> Any:
    return helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])


def constant_node(output: str, tensor: Any, attr_type: int | None = None) -> Any:
    node = helper.make_node("Constant", [], [output], value=tensor)
    if attr_type is not None:
        node.attribute[0].type = attr_type  # lie about which field is set
    return node


def model(nodes: list[Any], initializers: list[Any] = (), sparse: list[Any] = (), functions: list[Any] = (),
          opset_extra: list[Any] = ()) -> Any:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], list(initializers),
        sparse_initializer=list(sparse))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), *opset_extra],
                              functions=list(functions))
    proto.ir_version = 10  # what onnxruntime 1.2x reads
    return proto


def in_initializer(secret: Path) -> Any:
    return model([helper.make_node("Add", ["x", "w"], ["y"])], [external(weights(), secret)])


def in_sparse_values(secret: Path) -> Any:
    values = external(helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0]), secret)
    indices = helper.make_tensor("i", TensorProto.INT64, [1], [0])
    return model([helper.make_node("Add", ["x", "w"], ["y"])], sparse=[helper.make_sparse_tensor(values, indices, [2])])


def in_sparse_indices(secret: Path) -> Any:
    values = helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])
    indices = external(helper.make_tensor("i", TensorProto.INT64, [1], [0]), secret)
    return model([helper.make_node("Add", ["x", "w"], ["y"])], sparse=[helper.make_sparse_tensor(values, indices, [2])])


def in_constant_attribute(secret: Path) -> Any:
    return model([constant_node("w", external(weights(), secret)), helper.make_node("Add", ["x", "w"], ["y"])])


def in_attribute_typed_as_int(secret: Path) -> Any:
    return model([constant_node("w", external(weights(), secret), helper.AttributeProto.INT),
                  helper.make_node("Add", ["x", "w"], ["y"])])


def in_sparse_attribute(secret: Path) -> Any:
    values = external(helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]), secret)
    sparse = helper.make_sparse_tensor(values, helper.make_tensor("i", TensorProto.INT64, [1], [0]), [2])
    return model([helper.make_node("Constant", [], ["w"], sparse_value=sparse),
                  helper.make_node("Add", ["x", "w"], ["y"])])


def _branch(secret: Path, name: str) -> Any:
    return helper.make_graph([constant_node(name, external(weights(), secret))], name, [],
                             [helper.make_tensor_value_info(name, TensorProto.FLOAT, [2])])


def in_if_branch_three_levels_down(secret: Path) -> Any:
    inner = helper.make_graph(
        [helper.make_node("If", ["c"], ["t2"], then_branch=_branch(secret, "t2"), else_branch=_branch(secret, "t2"))],
        "mid", [], [helper.make_tensor_value_info("t2", TensorProto.FLOAT, [2])],
        [helper.make_tensor("c", TensorProto.BOOL, [], [True])])
    outer = helper.make_node("If", ["cond"], ["w"], then_branch=inner, else_branch=inner)
    return model([outer, helper.make_node("Add", ["x", "w"], ["y"])],
                 [helper.make_tensor("cond", TensorProto.BOOL, [], [True])])


def in_model_local_function(secret: Path) -> Any:
    body = [constant_node("k", external(weights(), secret)), helper.make_node("Add", ["a", "k"], ["b"])]
    function = helper.make_function("local.fn", "AddSecret", ["a"], ["b"], body,
                                    [helper.make_opsetid("", 17)])
    return model([helper.make_node("AddSecret", ["x"], ["y"], domain="local.fn")], functions=[function],
                 opset_extra=[helper.make_opsetid("local.fn", 1)])


def in_function_subgraph(secret: Path) -> Any:
    body = [helper.make_node("If", ["c"], ["k"], then_branch=_branch(secret, "k"), else_branch=_branch(secret, "k")),
            constant_node("c", helper.make_tensor("c", TensorProto.BOOL, [], [True])),
            helper.make_node("Add", ["a", "k"], ["b"])]
    function = helper.make_function("local.fn", "AddSecret", ["a"], ["b"], body, [helper.make_opsetid("", 17)])
    return model([helper.make_node("AddSecret", ["x"], ["y"], domain="local.fn")], functions=[function],
                 opset_extra=[helper.make_opsetid("local.fn", 1)])


def in_function_default_attribute(secret: Path) -> Any:
    """A function's default attribute value: used wherever a call leaves the attribute out."""
    body = [helper.make_node("Add", ["a", "a"], ["b"])]
    function = helper.make_function("local.fn", "Twice", ["a"], ["b"], body, [helper.make_opsetid("", 17)],
                                    attribute_protos=[helper.make_attribute("k", external(weights(), secret))])
    return model([helper.make_node("Twice", ["x"], ["y"], domain="local.fn")], functions=[function],
                 opset_extra=[helper.make_opsetid("local.fn", 1)])


def in_training_graph(secret: Path) -> Any:
    proto = model([helper.make_node("Add", ["x", "x"], ["y"])])
    info = proto.training_info.add()
    info.initialization.CopyFrom(helper.make_graph([], "init", [], [], [external(weights(), secret)]))
    return proto


HOSTILE: dict[str, Callable[[Path], Any]] = {f.__name__: f for f in (
    in_initializer, in_sparse_values, in_sparse_indices, in_constant_attribute, in_attribute_typed_as_int,
    in_sparse_attribute, in_if_branch_three_levels_down, in_model_local_function, in_function_subgraph,
    in_function_default_attribute, in_training_graph,
)}


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "id_ed25519"
    path.write_bytes(SECRET)
    return path


@pytest.mark.parametrize("build", HOSTILE.values(), ids=HOSTILE.keys())
def test_external_data_anywhere_is_refused_before_any_session(build: Callable[[Path], Any], secret: Path,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "evil.onnx"
    path.write_bytes(build(secret).SerializeToString())
    sessions: list[bytes] = []
    import modelcapsule.formats.onnx as onnx_format

    monkeypatch.setattr(onnx_format, "make_session", lambda data, device=None, **_: sessions.append(data))
    with pytest.raises(CapsuleFormatError, match="external file") as info:
        mc.load(path)
    assert SECRET.decode() not in str(info.value)
    assert not sessions, "a session was built from a graph with external data"
    with pytest.raises(CapsuleFormatError, match="external file"):
        check_graph(path.read_bytes())


def test_the_same_graph_without_external_data_loads_and_runs(tmp_path: Path) -> None:
    """The control: the walk refuses external data, not functions, subgraphs or sparse tensors as such."""
    body = [constant_node("k", weights()), helper.make_node("Add", ["a", "k"], ["b"])]
    function = helper.make_function("local.fn", "AddK", ["a"], ["b"], body, [helper.make_opsetid("", 17)])
    proto = model([helper.make_node("AddK", ["x"], ["y"], domain="local.fn")], functions=[function],
                  opset_extra=[helper.make_opsetid("local.fn", 1)])
    path = tmp_path / "ok.onnx"
    path.write_bytes(proto.SerializeToString())
    session = mc.load(path)
    out = session.run(None, {"x": np.array([1.0, 1.0], dtype=np.float32)})[0]
    np.testing.assert_array_equal(out, [2.0, 3.0])


def test_a_custom_domain_inside_a_function_body_is_refused(tmp_path: Path) -> None:
    body = [helper.make_node("Evil", ["a"], ["b"], domain="com.attacker")]
    function = helper.make_function("local.fn", "Wrap", ["a"], ["b"], body,
                                    [helper.make_opsetid("", 17), helper.make_opsetid("com.attacker", 1)])
    proto = model([helper.make_node("Wrap", ["x"], ["y"], domain="local.fn")], functions=[function],
                  opset_extra=[helper.make_opsetid("local.fn", 1)])
    with pytest.raises(CapsuleFormatError, match="com.attacker"):
        check_graph(proto.SerializeToString())


@pytest.mark.parametrize("data", [b"", b"\x08" * 7, b"\x0a\xff\xff\xff\xff\x0f" + b"\0" * 16, b"\x3a" * 4000])
def test_garbage_is_a_format_error_or_an_empty_graph(data: bytes) -> None:
    with contextlib.suppress(CapsuleFormatError):  # protobuf may read some garbage as an empty model
        check_graph(data)
