"""TLS for ``capsule serve``: HTTPS and gRPC over TLS with --tls-cert/--tls-key, and mutual TLS with
--tls-client-ca, checked with real clients (requests with a CA bundle, tritonclient over HTTPS and a
secure gRPC channel) against certificates the tests make."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from .certs import Certificates, make_certificates, start_tls_server
from .conftest import Models, Server

ROW = [[5.1, 3.5, 1.4, 0.2]]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_server(models: Models, certs: Certificates, capsule_cmd: list[str], subprocess_env: dict[str, str],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_tls_server(capsule_cmd, subprocess_env, tmp_path_factory.mktemp("tls"), certs,
                           str(models.iris_path))
    yield srv
    srv.stop()


def test_https_with_the_ca_bundle(tls_server: Server, certs: Certificates, models: Models) -> None:
    answer = requests.post(f"{tls_server.url}/v1/models/iris:predict", json={"instances": ROW},
                           verify=str(certs.ca), timeout=10)
    assert answer.json() == {"predictions": models.iris.predict(np.array(ROW)).tolist()}
    with pytest.raises(requests.exceptions.SSLError):  # a client that trusts another CA refuses the server
        requests.get(f"{tls_server.url}/v2/health/live", verify=str(certs.other_ca), timeout=10)
    with pytest.raises(requests.exceptions.ConnectionError):  # plain HTTP is not answered
        requests.get(f"http://127.0.0.1:{tls_server.http_port}/v2/health/live", timeout=10)


def test_tritonclient_over_https(tls_server: Server, certs: Certificates, models: Models) -> None:
    client = triton_http.InferenceServerClient(f"127.0.0.1:{tls_server.http_port}", ssl=True,
                                               ssl_options={"ca_certs": str(certs.ca)})
    tensor = triton_http.InferInput("input", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.asarray(ROW))
    result = client.infer("iris", [tensor])
    assert result.as_numpy("predict").tolist() == models.iris.predict(np.array(ROW)).tolist()


def test_grpc_over_tls(tls_server: Server, certs: Certificates, models: Models) -> None:
    client = triton_grpc.InferenceServerClient(tls_server.grpc_address, ssl=True,
                                               root_certificates=str(certs.ca))
    assert client.is_server_live()
    tensor = triton_grpc.InferInput("input", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.asarray(ROW))
    assert client.infer("iris", [tensor]).as_numpy("predict").tolist() == models.iris.predict(np.array(ROW)).tolist()
    untrusting = triton_grpc.InferenceServerClient(tls_server.grpc_address, ssl=True,
                                                   root_certificates=str(certs.other_ca))
    with pytest.raises(InferenceServerException):
        untrusting.is_server_live(client_timeout=5)


def test_mutual_tls_needs_a_client_certificate(models: Models, certs: Certificates, capsule_cmd: list[str],
                                               subprocess_env: dict[str, str], tmp_path: Path) -> None:
    mine = (str(certs.client_cert), str(certs.client_key))
    srv = start_tls_server(capsule_cmd, subprocess_env, tmp_path / "mtls", certs, str(models.iris_path),
                           "--tls-client-ca", str(certs.ca), client_cert=mine)
    try:
        ok = requests.post(f"{srv.url}/predict", json={"inputs": ROW}, verify=str(certs.ca), cert=mine, timeout=10)
        assert ok.status_code == 200
        with pytest.raises(requests.exceptions.RequestException):
            requests.post(f"{srv.url}/predict", json={"inputs": ROW}, verify=str(certs.ca), timeout=10)
        grpc_ok = triton_grpc.InferenceServerClient(srv.grpc_address, ssl=True, root_certificates=str(certs.ca),
                                                    private_key=str(certs.client_key),
                                                    certificate_chain=str(certs.client_cert))
        assert grpc_ok.is_server_live()
        anonymous = triton_grpc.InferenceServerClient(srv.grpc_address, ssl=True, root_certificates=str(certs.ca))
        with pytest.raises(InferenceServerException):
            anonymous.is_server_live(client_timeout=5)
    finally:
        srv.stop()


def test_tls_options_go_together(models: Models, certs: Certificates, capsule_cmd: list[str],
                                 subprocess_env: dict[str, str]) -> None:
    done = subprocess.run([*capsule_cmd, "serve", str(models.iris_path), "--tls-cert", str(certs.server_cert)],
                          env=subprocess_env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "--tls-key" in done.stderr
