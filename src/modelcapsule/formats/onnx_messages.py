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

__all__ = ["EXTERNAL", "SCHEMA", "model_class"]

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


@cache
def model_class() -> Any:
    """The ``ModelProto`` message class of :data:`SCHEMA`, built once in a private descriptor pool."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    types = descriptor_pb2.FieldDescriptorProto
    scalar = {"string": types.TYPE_STRING, "int64": types.TYPE_INT64}
    label = {"optional": types.LABEL_OPTIONAL, "repeated": types.LABEL_REPEATED}
    file = descriptor_pb2.FileDescriptorProto(name="modelcapsule/onnx_check.proto", package=PACKAGE, syntax="proto2")
    for message_name, fields in SCHEMA.items():
        message = file.message_type.add(name=message_name)
        if message_name == "TensorProto":
            enum = message.enum_type.add(name="DataLocation")
            for value_name, number in DATA_LOCATION.items():
                enum.value.add(name=value_name, number=number)
        for field_name, number, how, kind in fields:
            field = message.field.add(name=field_name, number=number, label=label[how])
            if kind in scalar:
                field.type = scalar[kind]
            elif kind == "TensorProto.DataLocation":
                field.type, field.type_name = types.TYPE_ENUM, f".{PACKAGE}.{kind}"
            else:
                field.type, field.type_name = types.TYPE_MESSAGE, f".{PACKAGE}.{kind}"
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(file.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.ModelProto"))
