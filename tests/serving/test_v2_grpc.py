"""Open Inference Protocol V2 over gRPC, driven by tritonclient.grpc; and the generated stubs stay in step."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from modelcapsule.serving.grpc import generate

from .conftest import Models, Server


def test_health_metadata_and_inference(server: Server, models: Models) -> None:
    c = triton.InferenceServerClient(server.grpc_address)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("iris")
    assert not c.is_model_ready("iris", model_version="9")
    meta = c.get_model_metadata("iris", as_json=True)
    assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": ["-1", "4"]}]
    rows = models.X[10:15]
    tensor = triton.InferInput("input", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)  # raw_input_contents
    result = c.infer("iris", [tensor])
    np.testing.assert_array_equal(result.as_numpy("predict"), models.iris.predict(rows))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), models.iris.predict_proba(rows))
    only = c.infer("iris", [tensor], outputs=[triton.InferRequestedOutput("predict")])
    assert [o.name for o in only.get_response().outputs] == ["predict"]


def test_errors_are_grpc_status_codes(server: Server, models: Models) -> None:
    c = triton.InferenceServerClient(server.grpc_address)
    bad = triton.InferInput("input", [1, 3], "FP64")
    bad.set_data_from_numpy(np.zeros((1, 3)))
    with pytest.raises(InferenceServerException) as err:
        c.infer("iris", [bad])
    assert err.value.status() == str(grpc.StatusCode.INVALID_ARGUMENT)
    assert "expected [-1, 4]" in err.value.message()
    with pytest.raises(InferenceServerException) as err:
        c.infer("no_such_model", [bad])
    assert err.value.status() == str(grpc.StatusCode.NOT_FOUND)
    good = triton.InferInput("input", [1, 4], "FP64")
    good.set_data_from_numpy(models.X[:1])
    assert c.infer("iris", [good]).as_numpy("predict").tolist() == models.iris.predict(models.X[:1]).tolist()


def test_checked_in_stubs_match_the_proto(tmp_path: Path) -> None:
    for generated in generate.generate(tmp_path):
        checked_in = generate.HERE / generated.name
        assert checked_in.read_text() == generated.read_text(), (
            f"{checked_in.name} is stale: run python -m modelcapsule.serving.grpc.generate"
        )


def test_typed_contents_instead_of_raw_bytes(server: Server, models: Models) -> None:
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    request = service_pb2.ModelInferRequest(model_name="iris", id="typed-1")
    tensor = request.inputs.add(name="input", datatype="FP64", shape=[3, 4])
    tensor.contents.fp64_contents.extend(models.X[20:23].ravel().tolist())
    request.outputs.add(name="predict_proba")
    with grpc.insecure_channel(server.grpc_address) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    assert response.id == "typed-1" and [o.name for o in response.outputs] == ["predict_proba"]
    assert list(response.outputs[0].shape) == [3, 3]
    values = np.frombuffer(response.raw_output_contents[0], dtype="<f8").reshape(3, 3)
    np.testing.assert_allclose(values, models.iris.predict_proba(models.X[20:23]))
