"""The graph check's own declaration of the ONNX messages reads every byte exactly as the ``onnx`` package does.

The check parses a graph with :mod:`modelcapsule.formats.onnx_messages` so that a server never imports
``onnx``. That is safe only if, for the fields it reads, the declaration is the upstream schema: same
numbers, types, labels, closed enum. These tests compare it with ``onnx``'s own descriptors, then compare
what the walk finds through both parsers on real graphs, hostile graphs and thousands of mutated ones.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from google.protobuf.message import DecodeError  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from test_onnx_external_data import HOSTILE, constant_node, model, weights  # noqa: E402

from modelcapsule.errors import CapsuleFormatError  # noqa: E402
from modelcapsule.formats.onnx import _walk, check_graph  # noqa: E402
from modelcapsule.formats.onnx_messages import EXTERNAL, PACKAGE, SCHEMA, file_descriptor, model_class  # noqa: E402


def ours(name: str) -> Any:
    return model_class().DESCRIPTOR.file.pool.FindMessageTypeByName(f"modelcapsule.onnx_check.{name}")


@pytest.mark.parametrize("message", sorted(SCHEMA))
def test_each_declared_field_is_the_upstream_field(message: str) -> None:
    upstream = getattr(onnx, message).DESCRIPTOR
    declared = ours(message)
    assert [f.name for f in declared.fields] == [name for name, *_ in SCHEMA[message]]
    for field in declared.fields:
        theirs = upstream.fields_by_name[field.name]
        assert (field.number, field.type, field.has_presence) == (theirs.number, theirs.type, theirs.has_presence)
        assert field.label == theirs.label
        if theirs.message_type is not None:
            assert field.message_type.name == theirs.message_type.name
        if theirs.enum_type is not None:
            assert field.enum_type.is_closed and theirs.enum_type.is_closed
            assert {v.name: v.number for v in field.enum_type.values} == \
                {v.name: v.number for v in theirs.enum_type.values}


def test_the_schema_bytes_are_what_descriptor_pb2_writes() -> None:
    # the file descriptor is written by hand; protobuf's own descriptor messages, built from SCHEMA,
    # serialize to the same bytes
    from google.protobuf import descriptor_pb2

    types = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="modelcapsule/onnx_check.proto", package=PACKAGE, syntax="proto2")
    for message_name, fields in SCHEMA.items():
        message = file.message_type.add(name=message_name)
        if message_name == "TensorProto":
            enum = message.enum_type.add(name="DataLocation")
            enum.value.add(name="DEFAULT", number=0)
            enum.value.add(name="EXTERNAL", number=EXTERNAL)
        for field_name, number, how, kind in fields:
            field = message.field.add(name=field_name, number=number,
                                      label=types.LABEL_REPEATED if how == "repeated" else types.LABEL_OPTIONAL)
            if kind in ("string", "int64"):
                field.type = types.TYPE_STRING if kind == "string" else types.TYPE_INT64
            else:
                field.type = types.TYPE_ENUM if kind == "TensorProto.DataLocation" else types.TYPE_MESSAGE
                field.type_name = f".{PACKAGE}.{kind}"
    assert file_descriptor() == file.SerializeToString()
    parsed = descriptor_pb2.FileDescriptorProto.FromString(file_descriptor())
    assert [m.name for m in parsed.message_type] == list(SCHEMA)


def test_external_is_the_upstream_value() -> None:
    assert EXTERNAL == TensorProto.EXTERNAL


def found(proto: Any) -> tuple[Any, ...]:
    """What the check's walk finds in ``proto`` (parsed by either parser), in comparable form."""
    walk = _walk(proto)
    # sorted by repr: a proto2 string that is not UTF-8 reads as bytes, through either parser
    tensors = sorted(((t.name, int(t.data_location), [(e.key, e.value) for e in t.external_data])
                      for t in walk.tensors), key=repr)
    opset = sorted(((o.domain, int(o.version)) for o in proto.opset_import), key=repr)
    local = sorted((f.domain for f in proto.functions), key=repr)
    return (tensors, sorted(walk.domains, key=repr), walk.graph_nodes, opset, local, proto.producer_name,
            proto.producer_version)


def parsed_both_ways(data: bytes) -> tuple[Any, Any]:
    """``found`` through onnx's ModelProto and through the declared subset; the error type if parsing fails."""
    results = []
    for cls in (onnx.ModelProto, model_class()):
        proto = cls()
        try:
            proto.ParseFromString(data)
        except (DecodeError, RecursionError, ValueError) as exc:
            results.append(type(exc).__name__)
            continue
        results.append(found(proto))
    return results[0], results[1]


def real_graphs() -> dict[str, bytes]:
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(x, x[:, 0] > 0)
    graphs = {"skl2onnx forest": to_onnx(forest, x[:1], options={"zipmap": False}).SerializeToString()}
    body = [constant_node("k", weights()), helper.make_node("Add", ["a", "k"], ["b"])]
    function = helper.make_function("local.fn", "AddK", ["a"], ["b"], body, [helper.make_opsetid("", 17)],
                                    attribute_protos=[helper.make_attribute("scale", weights())])
    graphs["local function"] = model([helper.make_node("AddK", ["x"], ["y"], domain="local.fn")],
                                     functions=[function],
                                     opset_extra=[helper.make_opsetid("local.fn", 1)]).SerializeToString()
    return graphs


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    secret = tmp_path_factory.mktemp("secret") / "key"
    secret.write_bytes(b"canary")
    return {**real_graphs(), **{name: build(secret).SerializeToString() for name, build in HOSTILE.items()}}


def test_the_walk_finds_the_same_through_both_parsers(graphs: dict[str, bytes]) -> None:
    for name, data in graphs.items():
        upstream, declared = parsed_both_ways(data)
        assert isinstance(upstream, tuple), name
        assert declared == upstream, name


def test_mutated_graphs_read_the_same_through_both_parsers(graphs: dict[str, bytes]) -> None:
    """Flipped, dropped and duplicated bytes (wrong wire types, merged repeats, values outside the enum,
    truncated lengths): whatever the declared subset parses, ``onnx`` parses to the same tensors, domains
    and locations, or refuses. It refuses more: it also parses the fields the check never reads (a
    mangled type or shape), which the subset keeps as unknown bytes; never the other way round."""
    rng = random.Random(20)
    sources = list(graphs.values())
    compared = 0
    for _ in range(3000):
        data = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            how = rng.randrange(3)
            if how == 0:
                data[at] = rng.randrange(256)
            elif how == 1:
                del data[at : at + rng.randint(1, 8)]
            else:
                data[at:at] = data[at : at + rng.randint(1, 16)]
        upstream, declared = parsed_both_ways(bytes(data))
        if isinstance(declared, str):
            assert isinstance(upstream, str)  # the subset refuses only what onnx refuses too
        elif isinstance(upstream, tuple):
            assert declared == upstream
            compared += 1
    assert compared > 100  # most mutations still parse: the comparison is not vacuous


def field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    length, size = b"", len(payload)
    while True:
        length += bytes([(size & 0x7F) | (0x80 if size > 0x7F else 0)])
        size >>= 7
        if not size:
            return bytes([number << 3 | 2]) + length + payload


def test_a_later_value_outside_the_enum_does_not_undo_external() -> None:
    """``data_location`` sent twice, EXTERNAL then 5: the closed enum keeps EXTERNAL (5 becomes an unknown
    field), as onnx and onnxruntime read it; a plain integer field would have read 5 and let it through.
    The tensor arrives in a second occurrence of ``graph``, which protobuf merges into the first."""
    tensor = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "/etc/hostname"
    tensor.ClearField("external_data")  # only the location enum says "external" here
    raw = tensor.SerializeToString() + bytes([14 << 3, 5])
    data = model([helper.make_node("Add", ["x", "w"], ["y"])]).SerializeToString() + field(7, field(5, raw))
    upstream = onnx.ModelProto()
    upstream.ParseFromString(data)
    assert [(t.name, t.data_location) for t in upstream.graph.initializer] == [("w", TensorProto.EXTERNAL)]
    with pytest.raises(CapsuleFormatError, match="external file"):
        check_graph(data)


def test_the_check_imports_no_onnx_package(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """What a server runs: parsing and walking a real export leaves ``onnx`` unimported."""
    import subprocess
    import sys

    path = tmp_path / "forest.onnx"
    path.write_bytes(real_graphs()["skl2onnx forest"])
    code = ("import sys, json; from modelcapsule.formats.onnx import check_graph; "
            "summary = check_graph(open(sys.argv[1], 'rb').read()); "
            "print(json.dumps([summary['nodes'], 'onnx' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=subprocess_env, capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[1, false]"
