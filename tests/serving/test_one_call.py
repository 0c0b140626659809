"""Every transport goes through DataPlane.infer once per inference request, and is counted by it with
the same labels; the adapters only convert (they never check, run or count themselves), never import
each other, and the gRPC side imports no HTTP framework."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import requests
import tritonclient.grpc as triton
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

import modelcapsule.serving
from modelcapsule.serving import DataPlane, Repository, ServerOptions, create_app
from modelcapsule.serving.transport import Call, Inference

from .conftest import Models, Server, free_port

SERVING = Path(modelcapsule.serving.__file__).parent
ADAPTERS = ("v2", "tfserving", "seldon", "plain", "mlflow")
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
BAD_ROWS = [[5.1, 3.5]]


def rest_requests(rows: list[list[float]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(protocol label, path, JSON body): one inference request per REST protocol."""
    return [
        ("v2", "/v2/models/iris/infer",
         {"inputs": [{"name": "input", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": rows}]}),
        ("tfserving", "/v1/models/iris:predict", {"instances": rows}),
        ("seldon", "/api/v1.0/predictions?model=iris", {"data": {"ndarray": rows}}),
        ("plain", "/predict?model=iris", {"inputs": rows}),
        ("mlflow", "/invocations?model=iris", {"inputs": rows}),
    ]


def spy_on_infer(plane: DataPlane) -> list[str]:
    """Record the protocol of every DataPlane.infer call (the adapters look the method up per request)."""
    protocols: list[str] = []
    infer = plane.infer

    async def counted(call: Call, decode: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Inference:
        protocols.append(call.protocol)
        return await infer(call, decode, *args, **kwargs)

    plane.infer = counted  # type: ignore[method-assign]
    return protocols


def test_each_rest_request_is_one_data_plane_call(models: Models) -> None:
    plane = DataPlane(Repository([models.iris_path], ServerOptions()))
    asyncio.run(plane.reconcile())
    plane.reset_loop_state()
    protocols = spy_on_infer(plane)
    app = create_app(plane, poll=False)

    async def send(inference: bool) -> list[int]:
        statuses = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            if not inference:
                for path in ("/v2/models/iris", "/v1/models/iris/metadata", "/v2/health/ready", "/ping"):
                    statuses.append((await c.get(path)).status_code)
                return statuses
            for rows in (ROWS, BAD_ROWS):
                for _, path, body in rest_requests(rows):
                    statuses.append((await c.post(path, json=body)).status_code)
            seldon_on_predict = await c.post("/predict?model=iris", json={"data": {"ndarray": ROWS}})
            statuses.append(seldon_on_predict.status_code)
        return statuses

    assert asyncio.run(send(inference=True)) == [200] * 5 + [400] * 5 + [200]
    assert protocols == [*ADAPTERS, *ADAPTERS, "seldon"]  # one call per request, under its protocol's name
    registry = plane.metrics.registry
    for protocol in ADAPTERS:
        for status, count in (("200", 2 if protocol == "seldon" else 1), ("400", 1)):
            labels = {"model": "iris", "version": "1", "protocol": protocol, "status": status}
            assert registry.get_sample_value("modelcapsule_requests_total", labels) == count, labels
    assert asyncio.run(send(inference=False)) == [200] * 4
    assert len(protocols) == 11  # metadata, status and health make no inference call
    asyncio.run(plane.close())


_GRPC_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path

    import grpc
    import numpy as np

    from modelcapsule.serving import DataPlane, Repository, ServerOptions
    from modelcapsule.serving.grpc import grpc_service_pb2 as pb, grpc_service_pb2_grpc as pb_grpc
    from modelcapsule.serving.grpc.server import start_grpc_server

    def request(rows):
        arr = np.asarray(rows, dtype="<f8")
        req = pb.ModelInferRequest(model_name="iris", id="r")
        req.inputs.add(name="input", datatype="FP64", shape=list(arr.shape))
        req.raw_input_contents.append(arr.tobytes())
        return req

    async def main(path, port, good, bad):
        plane = DataPlane(Repository([Path(path)], ServerOptions()))
        await plane.reconcile()
        protocols, infer = [], plane.infer
        async def counted(call, decode, *args, **kwargs):
            protocols.append(call.protocol)
            return await infer(call, decode, *args, **kwargs)
        plane.infer = counted
        server = await start_grpc_server(plane, "127.0.0.1", port)
        codes = []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for rows in (good, bad):
                try:
                    await stub.ModelInfer(request(rows), timeout=10)
                    codes.append("OK")
                except grpc.aio.AioRpcError as exc:
                    codes.append(exc.code().name)
            await stub.ModelMetadata(pb.ModelMetadataRequest(name="iris"), timeout=10)
        await server.stop(0)
        await plane.close()
        samples = [
            {**labels, "value": value}
            for name, labels, value in plane.metrics.registry.samples() if name == "modelcapsule_requests_total"
        ]
        http = sorted(m for m in sys.modules if m.split(".")[0] in ("starlette", "uvicorn", "fastapi", "flask"))
        print(json.dumps({"protocols": protocols, "codes": codes, "samples": samples, "http": http}))

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])))
    """
)


def test_each_grpc_request_is_one_data_plane_call_counted_like_http(
    models: Models, subprocess_env: dict[str, str]
) -> None:
    # its own process: the generated V2 messages cannot share one with tritonclient's
    out = subprocess.run(
        [sys.executable, "-c", _GRPC_CHILD, str(models.iris_path), str(free_port()), json.dumps(ROWS),
         json.dumps(BAD_ROWS)],
        env=subprocess_env, capture_output=True, text=True, timeout=120, check=True,
    )
    report = json.loads(out.stdout.splitlines()[-1])
    assert report["protocols"] == ["grpc", "grpc"]  # ModelMetadata is no inference: no call
    assert report["codes"] == ["OK", "INVALID_ARGUMENT"]
    assert sorted((s["status"], s["value"]) for s in report["samples"]) == [("200", 1.0), ("400", 1.0)]
    assert all(set(s) == {"model", "version", "protocol", "status", "value"} for s in report["samples"])
    assert report["http"] == []  # serving gRPC never imported an HTTP framework


def test_the_grpc_servicer_imports_no_http_framework(subprocess_env: dict[str, str]) -> None:
    code = (
        "import sys, modelcapsule.serving.grpc.service\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'fastapi', 'flask')))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def request_counts(server: Server) -> Counter[tuple[str, str]]:
    """modelcapsule_requests_total for the iris model, by (protocol, status)."""
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "modelcapsule_requests_total" and s.labels["model"] == "iris":
                assert set(s.labels) == {"model", "version", "protocol", "status"}
                counts[s.labels["protocol"], s.labels["status"]] += int(s.value)
    return counts


def test_every_transport_is_counted_once_per_request_with_the_same_labels(server: Server, models: Models) -> None:
    before = request_counts(server)
    for rows in (ROWS, BAD_ROWS):
        for _, path, body in rest_requests(rows):
            requests.post(server.url + path, json=body, timeout=10)
    client = triton.InferenceServerClient(server.grpc_address)
    for rows in (ROWS, BAD_ROWS):
        tensor = triton.InferInput("input", [len(rows), len(rows[0])], "FP64")
        tensor.set_data_from_numpy(np.asarray(rows, dtype="float64"))
        with contextlib.suppress(InferenceServerException):  # the bad rows: INVALID_ARGUMENT
            client.infer("iris", [tensor])
    delta = request_counts(server) - before
    expected = {(p, status): 1 for p in (*ADAPTERS, "grpc") for status in ("200", "400")}
    assert dict(delta) == expected


def _adapter_modules() -> dict[str, ast.Module]:
    files = {name: SERVING / "rest" / f"{name}.py" for name in ADAPTERS}
    files["grpc"] = SERVING / "grpc" / "service.py"
    return {name: ast.parse(path.read_text()) for name, path in files.items()}


@pytest.mark.parametrize("name", [*ADAPTERS, "grpc"])
def test_adapters_convert_only(name: str) -> None:
    """No adapter checks a request against the signature, runs a model, or counts a request: the data
    plane's one call does; and no adapter imports another one."""
    tree = _adapter_modules()[name]
    forbidden = {"check_inputs", "check_outputs", "predict", "predictor", "batcher", "executor", "_run",
                 "metrics", "record"}
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not used & forbidden, f"{name} does the data plane's work: {sorted(used & forbidden)}"
    imported = {
        part
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for part in [*(node.module or "").split("."), *(alias.name for alias in node.names)]
    }
    others = (set(ADAPTERS) - {name}) & imported
    assert not others, f"{name} imports the adapter(s) {sorted(others)}"
    assert sum(isinstance(n, ast.Attribute) and n.attr == "infer" for n in ast.walk(tree)) >= 1
