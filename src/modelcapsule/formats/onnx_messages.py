"""The part of the ONNX protobuf schema the graph check reads, declared here instead of importing ``onnx``.

:func:`~modelcapsule.formats.onnx.check_graph` walks every graph, node, attribute and tensor of a model
for external data and operator domains. It needs a dozen fields, not the ``onnx`` package: importing that
costs ~0.1 s and ~7 MiB in a server that only runs the graph with onnxruntime, and it parses the graph
with the very protobuf runtime used here. So the messages below are declared field for field as in
``onnx-ml.proto`` (same numbers, types, labels, proto2 syntax, and the same closed ``DataLocation``
enum), and the bytes are parsed by protobuf itself: occurrences of a field merge, later scalars win,
values outside a closed enum and fields declared elsewhere are kept aside as unknown fields: exactly
what ``onnx.ModelProto.ParseFromString`` and onnxruntime do with the same bytes. Every other field is
skipped unread (protobuf keeps it as unknown bytes until the message is dropped).

``tests/security/test_onnx_messages.py`` compares each declaration with the ``onnx`` package's own
descriptors, so a field that moves upstream fails there instead of escaping the check.
"""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["EXTERNAL", "SCHEMA", "file_descriptor", "model_class"]

EXTERNAL = 1
"""``TensorProto.DataLocation.EXTERNAL``: the tensor's bytes live in a file named by ``external_data``."""

PACKAGE = "modelcapsule.onnx_check"

SCHEMA: dict[str, list[tuple[str, int, str, str]]] = {
    # message: [(field, number, "optional" | "repeated", type: "string" | "int64" | enum or message name)]
    "ModelProto": [("producer_name", 2, "optional", "string"), ("producer_version", 3, "optional", "string"),
                   ("graph", 7, "optional", "GraphProto"), ("opset_import", 8, "repeated", "OperatorSetIdProto"),
                   ("training_info", 20, "repeated", "TrainingInfoProto"),
                   ("functions", 25, "repeated", "FunctionProto")],
    "TrainingInfoProto": [("initialization", 1, "optional", "GraphProto"), ("algorithm", 2, "optional", "GraphProto")],
    "GraphProto": [("node", 1, "repeated", "NodeProto"), ("initializer", 5, "repeated", "TensorProto"),
                   ("sparse_initializer", 15, "repeated", "SparseTensorProto")],
    "NodeProto": [("attribute", 5, "repeated", "AttributeProto"), ("domain", 7, "optional", "string")],
    "FunctionProto": [("node", 7, "repeated", "NodeProto"), ("domain", 10, "optional", "string"),
                      ("attribute_proto", 11, "repeated", "AttributeProto")],
    "AttributeProto": [("t", 5, "optional", "TensorProto"), ("g", 6, "optional", "GraphProto"),
                       ("tensors", 10, "repeated", "TensorProto"), ("graphs", 11, "repeated", "GraphProto"),
                       ("sparse_tensor", 22, "optional", "SparseTensorProto"),
                       ("sparse_tensors", 23, "repeated", "SparseTensorProto")],
    "SparseTensorProto": [("values", 1, "optional", "TensorProto"), ("indices", 2, "optional", "TensorProto")],
    "TensorProto": [("name", 8, "optional", "string"), ("external_data", 13, "repeated", "StringStringEntryProto"),
                    ("data_location", 14, "optional", "TensorProto.DataLocation")],
    "StringStringEntryProto": [("key", 1, "optional", "string"), ("value", 2, "optional", "string")],
    "OperatorSetIdProto": [("domain", 1, "optional", "string"), ("version", 2, "optional", "int64")],
}
"""The declared subset of ``onnx-ml.proto`` (message → fields)."""

DATA_LOCATION = {"DEFAULT": 0, "EXTERNAL": EXTERNAL}


# descriptor.proto's numbers (FileDescriptorProto and the messages it holds): the file's schema is
# written as protobuf bytes here, because building it with ``descriptor_pb2`` imports that module
# (~30 ms and ~0.6 MiB at every ONNX server's start) only to serialize a dozen small messages
_TYPE = {"int64": 3, "string": 9, "message": 11, "enum": 14}  # FieldDescriptorProto.Type
_LABEL = {"optional": 1, "repeated": 3}  # FieldDescriptorProto.Label


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _text(number: int, value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def file_descriptor() -> bytes:
    """:data:`SCHEMA` as a serialized ``FileDescriptorProto`` (proto2), fields in number order as protobuf
    writes them: the very bytes ``descriptor_pb2`` would produce (a test compares the two)."""
    messages = b""
    for message_name, fields in SCHEMA.items():
        body = _text(1, message_name)  # DescriptorProto.name
        for field_name, number, how, kind in fields:
            field = _text(1, field_name) + _int(3, number) + _int(4, _LABEL[how])  # name, number, label
            if kind in _TYPE:
                field += _int(5, _TYPE[kind])  # type
            else:
                field += _int(5, _TYPE["enum" if kind == "TensorProto.DataLocation" else "message"])
                field += _text(6, f".{PACKAGE}.{kind}")  # type_name
            body += _text(2, field)  # DescriptorProto.field
        if message_name == "TensorProto":  # DescriptorProto.enum_type: DataLocation's values
            values = b"".join(_text(2, _text(1, name) + _int(2, number)) for name, number in DATA_LOCATION.items())
            body += _text(4, _text(1, "DataLocation") + values)
        messages += _text(4, body)  # FileDescriptorProto.message_type
    return _text(1, "modelcapsule/onnx_check.proto") + _text(2, PACKAGE) + messages + _text(12, "proto2")


@cache
def model_class() -> Any:
    """The ``ModelProto`` message class of :data:`SCHEMA`, built once in a private descriptor pool."""
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(file_descriptor())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.ModelProto"))
