"""/api/v1/openapi.json tells the truth about ``capsule registry serve``: every route's request schema,
statuses and security are what the server really accepts and answers, a wrong method is a 405 whose
``Allow`` names the right ones (in the registry's JSON error shape), and schemathesis (``--checks all``)
finds nothing against a real server, with public reads and with tokens."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modelcapsule.registry import Registry

from .conftest import Capsules, free_port


@dataclass(frozen=True)
class Served:
    url: str
    token: str


def _serve(root: Path, capsules: Capsules, capsule_cmd: list[str], env: dict[str, str],
           *flags: str) -> Iterator[Served]:
    """A registry with two models (two versions of ``iris``, one of ``other``, an alias on each), served by
    the real command; yields its URL and an admin token."""
    location = root / "reg"
    reg = Registry(str(location), create=True)
    try:
        reg.register("iris", capsules.a, tags={"team": "vision"})
        reg.register("iris", capsules.b)
        reg.register("other", capsules.c)
        reg.set_alias("iris", "prod", 1)
        reg.set_alias("other", "prod", 1)
        token = reg.create_token("truth", "admin")
    finally:
        reg.close()
    port = free_port()
    server = subprocess.Popen([*capsule_cmd, "registry", "serve", "--registry", str(location), "--port", str(port),
                               *flags], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/api/v1/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, server.stderr and server.stderr.read()
                time.sleep(0.2)
        yield Served(url, token)
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)


@pytest.fixture
def public(tmp_path: Path, capsules: Capsules, capsule_cmd: list[str],
           subprocess_env: dict[str, str]) -> Iterator[Served]:
    yield from _serve(tmp_path, capsules, capsule_cmd, subprocess_env, "--public-read")


@pytest.fixture
def private(tmp_path: Path, capsules: Capsules, capsule_cmd: list[str],
            subprocess_env: dict[str, str]) -> Iterator[Served]:
    yield from _serve(tmp_path, capsules, capsule_cmd, subprocess_env)


def test_a_wrong_method_is_405_naming_the_right_ones(public: Served) -> None:
    for method, path, allowed in [
        ("POST", "/api/v1/models", {"GET", "HEAD"}),
        ("PATCH", "/api/v1/models/iris/aliases/prod", {"GET", "HEAD", "PUT", "DELETE"}),
        ("GET", "/api/v1/models/iris/aliases/prod/rollback", {"POST"}),
        ("TRACE", "/api/v1/models/iris/versions", {"GET", "HEAD", "POST"}),
        ("DELETE", "/api/v1/webhooks/deliveries", {"GET", "HEAD"}),  # not "no webhook 'deliveries'"
    ]:
        answer = httpx.request(method, public.url + path, timeout=10)
        assert answer.status_code == 405, (method, path)
        assert set(answer.headers["allow"].split(", ")) == allowed
        assert answer.json()["error"]["code"] == "method_not_allowed"


def test_reads_need_no_token_only_when_public(public: Served) -> None:
    doc = httpx.get(f"{public.url}/api/v1/openapi.json", timeout=10).json()
    models = doc["paths"]["/api/v1/models"]["get"]
    assert models["security"] == [{}, {"bearer": []}]
    assert httpx.get(f"{public.url}/api/v1/models", timeout=10).status_code == 200
    # listing tokens is an admin read: never anonymous, and said so
    assert doc["paths"]["/api/v1/tokens"]["get"]["security"] == [{"bearer": []}]
    assert httpx.get(f"{public.url}/api/v1/tokens", timeout=10).status_code == 401
    put = doc["paths"]["/api/v1/models/{name}/aliases/{alias}"]["put"]
    assert put["security"] == [{"bearer": []}]
    body = put["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["version"] and body["properties"]["version"]["minimum"] == 1
    assert body["additionalProperties"] is False


def test_without_public_reads_every_route_needs_a_token(private: Served) -> None:
    doc = httpx.get(f"{private.url}/api/v1/openapi.json", timeout=10).json()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert operation["security"] == [{"bearer": []}], (method, path)
            assert "401" in operation["responses"], (method, path)
    assert httpx.get(f"{private.url}/api/v1/models", timeout=10).status_code == 401
    auth = {"Authorization": f"Bearer {private.token}"}
    assert httpx.get(f"{private.url}/api/v1/models", headers=auth, timeout=10).status_code == 200


def test_alias_body_is_checked_as_documented(public: Served) -> None:
    put = f"{public.url}/api/v1/models/iris/aliases/prod"
    auth = {"Authorization": f"Bearer {public.token}"}
    assert httpx.put(put, json={"version": 0}, headers=auth, timeout=10).status_code == 400
    assert httpx.put(put, json={"version": 2**63}, headers=auth, timeout=10).status_code == 400  # past the database
    assert httpx.put(put, json={}, headers=auth, timeout=10).status_code == 400
    assert httpx.put(put, json={"version": 2, "reason": 3}, headers=auth, timeout=10).status_code == 400
    assert httpx.put(put, json={"version": 2, "other": 1}, headers=auth, timeout=10).status_code == 400
    assert httpx.put(put, json={"version": 2.0, "reason": "go"}, headers=auth, timeout=10).status_code == 200


# Model routes' path parameters are filled with what the registry really holds, so schemathesis reaches past
# the 404s (token and webhook routes keep generated values, so its stateful links find what it created).
CONFIG = """
[[operations]]
include-path-regex = "^/api/v1/models/"
parameters = {"path.name" = "iris", "path.version" = 1, "path.alias" = "prod", "path.key" = "team"}

# No schema can say which bytes are a capsule the registry accepts: any other upload is a documented 422.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
"""


def _schemathesis(url: str, workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    (workdir / "schemathesis.toml").write_text(CONFIG)
    exe = shutil.which("schemathesis") or shutil.which("st")
    command = [exe] if exe else [sys.executable, "-m", "schemathesis.cli"]
    return subprocess.run(
        [*command, "run", f"{url}/api/v1/openapi.json", "--checks", "all", "--max-examples", "6", "--seed", "1",
         "--generation-database", ":memory:", "--request-timeout", "10", "--no-color", *extra],
        cwd=workdir, capture_output=True, text=True, timeout=240, check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("setup", ["public-read", "tokens"])
def test_schemathesis_finds_nothing(tmp_path: Path, capsules: Capsules, capsule_cmd: list[str],
                                    subprocess_env: dict[str, str], setup: str) -> None:
    """Every check over every route: schema-valid requests accepted, invalid ones refused, statuses and
    answers as documented, 405 and Allow for undocumented methods, and no route ignoring its security."""
    flags = ["--public-read"] if setup == "public-read" else []
    for served in _serve(tmp_path, capsules, capsule_cmd, subprocess_env, *flags):
        extra = [] if setup == "public-read" else ["-H", f"Authorization: Bearer {served.token}"]
        run = _schemathesis(served.url, tmp_path, *extra)
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        # 0 failures. Warnings may remain, each about test data rather than the API: without a token writes only
        # get their documented 401; random uploads are mostly not capsules (422); random parents are 404s.
        assert "❌" not in run.stdout and "Failed checks" not in run.stdout, run.stdout[-6000:]
        assert re.search(r"\d+ generated, \d+ passed", run.stdout), run.stdout[-6000:]
