"""V2 gRPC calls for the HTTP/2 transport tests: requests for the iris capsule, checks of the answers, and
the check that the server still serves after a hostile connection."""

from __future__ import annotations

import grpc
import numpy as np

from modelcapsule.serving.grpc import grpc_service_pb2 as pb
from modelcapsule.serving.grpc import grpc_service_pb2_grpc as pb_grpc

from . import h2wire as w
from .conftest import Models, Server


def iris_request(rows: np.ndarray, *outputs: str, model: str = "iris") -> pb.ModelInferRequest:
    """A V2 ``ModelInferRequest`` for the iris capsule, the rows as one raw FP64 buffer."""
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="input", datatype="FP64", shape=list(rows.shape))
    request.raw_input_contents.append(np.ascontiguousarray(rows, dtype="<f8").tobytes())
    for name in outputs:
        request.outputs.add(name=name)
    return request


def outputs_of(answer: bytes | pb.ModelInferResponse) -> dict[str, np.ndarray]:
    """The outputs of a ``ModelInferResponse`` (serialized or parsed), by name."""
    response = pb.ModelInferResponse.FromString(answer) if isinstance(answer, bytes) else answer
    dtypes = {"INT64": "<i8", "FP64": "<f8", "INT32": "<i4", "FP32": "<f4"}
    return {
        out.name: np.frombuffer(raw, dtype=dtypes[out.datatype]).reshape(list(out.shape))
        for out, raw in zip(response.outputs, response.raw_output_contents, strict=True)
    }


def assert_iris_answer(answer: bytes | pb.ModelInferResponse, models: Models, rows: np.ndarray) -> None:
    outputs = outputs_of(answer)
    if "predict" in outputs:
        np.testing.assert_array_equal(outputs["predict"], models.iris.predict(rows))
    if "predict_proba" in outputs:
        np.testing.assert_allclose(outputs["predict_proba"], models.iris.predict_proba(rows))
    assert outputs, "the answer has no outputs"


def still_serving(server: Server, models: Models) -> None:
    """A fresh grpcio channel gets a correct ModelInfer answer: the server keeps serving."""
    rows = models.X[7:9]
    with grpc.insecure_channel(server.grpc_address) as channel:
        answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(iris_request(rows), timeout=10)
    assert_iris_answer(answer, models, rows)


def raw_infer(rows: np.ndarray, *outputs: str) -> bytes:
    return bytes(iris_request(rows, *outputs).SerializeToString())


def connection_error(client: w.H2Client, data: bytes) -> int:
    """Send ``data``; the server must answer with a GOAWAY and close: its error code."""
    client.send(data)
    return client.expect_goaway().error_code
