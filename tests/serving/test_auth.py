"""Bearer tokens (``--token-file``): inference and admin routes need one, in every protocol (401 without,
403 with a token not listed, each in the protocol's own error shape; gRPC from the ``authorization``
metadata); health routes are exempt unless --protect-health."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from modelcapsule.serving.auth import Tokens

from .conftest import Models, Server, start_server

TOKEN = "s3cret-token-for-tests"
ROW = [[5.1, 3.5, 1.4, 0.2]]
GOOD = {"Authorization": f"Bearer {TOKEN}"}
WRONG = {"Authorization": "Bearer not-the-token"}


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "tokens.txt"
    path.write_text(f"# tokens of the serving tests\n\n{TOKEN}\nanother-token\n")
    return path


@pytest.fixture(scope="module")
def guarded(models: Models, token_file: Path, capsule_cmd: list[str], subprocess_env: dict[str, str],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(capsule_cmd, subprocess_env, tmp_path_factory.mktemp("auth"), str(models.iris_path),
                       "--token-file", str(token_file), "--no-access-log")
    yield srv
    srv.stop()


INFERENCE = [
    ("/v2/models/iris/infer", {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4],
                                           "data": ROW[0]}]}, lambda d: d["error"]),
    ("/v1/models/iris:predict", {"instances": ROW}, lambda d: d["error"]),
    ("/predict", {"inputs": ROW}, lambda d: d["error"]),
    ("/api/v1.0/predictions", {"data": {"ndarray": ROW}}, lambda d: d["status"]["info"]),
    ("/invocations", {"inputs": ROW}, lambda d: d["message"]),
]


@pytest.mark.parametrize(("path", "body", "message"), INFERENCE, ids=[p for p, _, _ in INFERENCE])
def test_inference_needs_a_listed_token_in_every_protocol(guarded: Server, path: str, body: dict[str, object],
                                                          message: object) -> None:
    url = guarded.url + path
    missing = requests.post(url, json=body, timeout=10)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "bearer token" in message(missing.json())  # type: ignore[operator]
    wrong = requests.post(url, json=body, headers=WRONG, timeout=10)
    assert wrong.status_code == 403 and "not accepted" in message(wrong.json())  # type: ignore[operator]
    assert requests.post(url, json=body, headers=GOOD, timeout=10).status_code == 200
    other = {"Authorization": "Bearer another-token"}
    assert requests.post(url, json=body, headers=other, timeout=10).status_code == 200


def test_admin_routes_need_a_token_and_health_routes_do_not(guarded: Server) -> None:
    for path in ("/metrics", "/", "/openapi.json", "/v2/models/iris", "/v1/models/iris/metadata"):
        assert requests.get(guarded.url + path, timeout=10).status_code == 401, path
        assert requests.get(guarded.url + path, headers=GOOD, timeout=10).status_code == 200, path
    for path in ("/v2/health/live", "/v2/health/ready", "/ping", "/health"):
        assert requests.get(guarded.url + path, timeout=10).status_code == 200, path


def test_the_try_it_form_needs_a_token_too(guarded: Server) -> None:
    url = f"{guarded.url}/models/iris/versions/1/predict"
    form = {"input": "5.1, 3.5, 1.4, 0.2"}
    assert requests.post(url, data=form, timeout=10).status_code == 401
    assert requests.post(url, data=form, headers=WRONG, timeout=10).status_code == 403
    assert requests.post(url, data=form, headers=GOOD, timeout=10).status_code != 401


def test_the_openapi_document_declares_the_bearer_scheme(guarded: Server) -> None:
    doc = requests.get(f"{guarded.url}/openapi.json", headers=GOOD, timeout=10).json()
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    infer = doc["paths"]["/v2/models/iris/infer"]["post"]
    assert infer["security"] == [{"bearer": []}] and {"401", "403"} <= set(infer["responses"])
    assert "security" not in doc["paths"]["/v2/health/live"]["get"]


def test_grpc_reads_the_authorization_metadata(guarded: Server, models: Models) -> None:
    client = triton.InferenceServerClient(guarded.grpc_address)
    assert client.is_server_live()  # health: exempt
    tensor = triton.InferInput("input", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.asarray(ROW))
    wrong = {"authorization": "Bearer not-the-token"}  # gRPC metadata keys are lower case
    for headers, code in ((None, "StatusCode.UNAUTHENTICATED"), (wrong, "StatusCode.PERMISSION_DENIED")):
        with pytest.raises(InferenceServerException) as refused:
            client.infer("iris", [tensor], headers=headers)
        assert str(refused.value.status()) == code
    answer = client.infer("iris", [tensor], headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.as_numpy("predict").tolist() == models.iris.predict(np.array(ROW)).tolist()


def test_protect_health_covers_health_routes_too(token_file: Path, tmp_path: Path) -> None:
    tokens = Tokens.from_file(token_file, protect_health=True)
    assert not tokens.exempt("/v2/health/live")
    with pytest.raises(ValueError, match="lists no token"):
        empty = tmp_path / "empty.txt"
        empty.write_text("# nothing\n")
        Tokens.from_file(empty)


def test_an_empty_token_file_is_refused_at_start(models: Models, capsule_cmd: list[str],
                                                 subprocess_env: dict[str, str], tmp_path: Path) -> None:
    import subprocess

    empty = tmp_path / "tokens.txt"
    empty.write_text("\n")
    done = subprocess.run([*capsule_cmd, "serve", str(models.iris_path), "--token-file", str(empty)],
                          env=subprocess_env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "lists no token" in done.stderr
