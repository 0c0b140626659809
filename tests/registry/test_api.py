"""The REST API as any HTTP client sees it: OpenAPI, bearer tokens and roles, JSON errors, streamed
uploads (raw body or multipart) under a size limit, downloads with their digest."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from modelcapsule.registry.local import LocalRegistry

from .conftest import Capsules, Served, serve


@pytest.fixture
def public(tmp_path: Path) -> Iterator[Served]:
    running = serve(tmp_path, public_read=True, max_body=100_000)
    try:
        yield running
    finally:
        running.server.stop()
        running.local.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_openapi_document_describes_every_route(served: Served) -> None:
    doc = httpx.get(f"{served.server.url}/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    for path in ("/api/v1/models", "/api/v1/models/{name}", "/api/v1/models/{name}/versions",
                 "/api/v1/models/{name}/versions/{version}", "/api/v1/models/{name}/versions/{version}/capsule",
                 "/api/v1/models/{name}/aliases/{alias}", "/api/v1/models/{name}/aliases/{alias}/history",
                 "/api/v1/models/{name}/aliases/{alias}/rollback", "/api/v1/models/{name}/aliases/{alias}/protection"):
        assert path in doc["paths"], path
    assert set(doc["paths"]["/api/v1/models/{name}/aliases/{alias}"]) == {"get", "put", "delete"}


def test_no_token_is_401_a_weak_one_403_and_errors_are_json(served: Served, capsules: Capsules) -> None:
    url = served.server.url
    missing = httpx.get(f"{url}/api/v1/models")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthenticated" and "Bearer" in missing.json()["error"]["message"]
    assert httpx.get(f"{url}/api/v1/models", headers=bearer("mcr_wrong")).status_code == 401
    assert httpx.get(f"{url}/api/v1/models", headers={"Authorization": "Basic abc"}).status_code == 401
    reader = served.local.create_token("viewer", "read")
    assert httpx.get(f"{url}/api/v1/models", headers=bearer(reader)).json() == {"models": []}
    refused = httpx.post(f"{url}/api/v1/models/fraud/versions", content=capsules.a.read_bytes(),
                         headers=bearer(reader))
    assert refused.status_code == 403 and "'write' role" in refused.json()["error"]["message"]
    served.local.revoke_token("viewer")
    assert httpx.get(f"{url}/api/v1/models", headers=bearer(reader)).status_code == 401
    admin = bearer(served.admin_token)
    unknown = httpx.get(f"{url}/api/v1/models/nope", headers=admin)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    bad = httpx.put(f"{url}/api/v1/models/nope/aliases/champion", content=b"{not json", headers=admin)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"
    assert httpx.get(f"{url}/api/v1/nothing", headers=admin).json()["error"]["code"] == "not_found"
    assert httpx.patch(f"{url}/api/v1/models", headers=admin).status_code == 405


def test_uploads_raw_or_multipart_record_the_token_name_as_the_actor(served: Served, capsules: Capsules) -> None:
    url, writer = served.server.url, served.local.create_token("ci-bot", "write")
    raw = httpx.post(f"{url}/api/v1/models/fraud/versions", params=[("tag", "team=risk"), ("alias", "staging")],
                     content=capsules.a.read_bytes(), headers=bearer(writer))
    assert raw.status_code == 201
    assert (raw.json()["version"], raw.json()["created_by"], raw.json()["tags"]) == (1, "ci-bot", {"team": "risk"})
    with open(capsules.b, "rb") as fh:
        multi = httpx.post(f"{url}/api/v1/models/fraud/versions", files={"capsule": ("b.capsule", fh)},
                           data={"description": "smaller C", "tag": "stage=dev"}, headers=bearer(writer))
    assert multi.status_code == 201 and multi.json()["description"] == "smaller C"
    moved = httpx.put(f"{url}/api/v1/models/fraud/aliases/staging", json={"version": 2, "reason": "try"},
                      headers=bearer(writer))
    assert (moved.json()["by"], moved.json()["from_version"], moved.json()["to_version"]) == ("ci-bot", 1, 2)
    history = httpx.get(f"{url}/api/v1/models/fraud/aliases/staging/history", headers=bearer(writer)).json()
    assert [e["by"] for e in history["events"]] == ["ci-bot", "ci-bot"]
    download = httpx.get(f"{url}/api/v1/models/fraud/versions/1/capsule", headers=bearer(writer))
    assert download.content == capsules.a.read_bytes()
    assert download.headers["x-modelcapsule-digest"] == "sha256:" + hashlib.sha256(download.content).hexdigest()
    refused = httpx.post(f"{url}/api/v1/models/fraud/versions", content=capsules.tampered.read_bytes(),
                         headers=bearer(writer))
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "verification_failed"
    assert list((served.local.backend.blobs.root / "tmp").iterdir()) == []  # type: ignore[attr-defined]


def test_public_read_answers_reads_only_and_bodies_over_the_limit_get_413(public: Served, capsules: Capsules) -> None:
    url = public.server.url
    assert httpx.get(f"{url}/api/v1/models").status_code == 200
    assert httpx.post(f"{url}/api/v1/models/fraud/versions", content=b"x").status_code == 401
    admin = bearer(public.admin_token)
    big = b"\0" * 200_000
    declared = httpx.post(f"{url}/api/v1/models/fraud/versions", content=big, headers=admin)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while streaming
        for _ in range(20):
            yield b"\0" * 10_000

    streamed = httpx.post(f"{url}/api/v1/models/fraud/versions", content=chunks(), headers=admin)
    assert streamed.status_code == 413
    assert list((public.local.backend.blobs.root / "tmp").iterdir()) == []  # type: ignore[attr-defined]
    empty = httpx.post(f"{url}/api/v1/models/fraud/versions", content=b"", headers=admin)
    assert empty.status_code == 400 and "no body" in empty.json()["error"]["message"]


def test_tokens_are_stored_only_as_sha256_hashes(served: Served) -> None:
    secret = served.local.create_token("deployer", "write")
    backend = served.local.backend
    assert isinstance(backend, LocalRegistry)
    with backend.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT name, role, sha256 FROM tokens ORDER BY name")).all()
    assert ("deployer", "write", hashlib.sha256(secret.encode()).hexdigest()) in rows
    database = Path(backend.url.removeprefix("sqlite:///"))
    stored = b"".join(p.read_bytes() for p in database.parent.glob("registry.db*"))
    assert secret.encode() not in stored and served.admin_token.encode() not in stored


def test_capsule_registry_serve_runs_as_a_command(tmp_path: Path, capsule_cmd: list[str],
                                                  subprocess_env: dict[str, str]) -> None:
    import signal
    import subprocess
    import time

    from .conftest import free_port

    port = free_port()
    server = subprocess.Popen([*capsule_cmd, "registry", "serve", "--registry", str(tmp_path / "reg"), "--port",
                               str(port), "--public-read"], env=subprocess_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/models", timeout=2)
                break
            except httpx.TransportError:
                alive = server.poll() is None and time.monotonic() < deadline
                assert alive, server.stderr.read() if server.stderr else ""
                time.sleep(0.2)
        assert answer.json() == {"models": []}
        assert httpx.post(f"http://127.0.0.1:{port}/api/v1/models/x/versions", content=b"x").status_code == 401
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)  # with public reads, the pages are served too
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert httpx.get(f"http://127.0.0.1:{port}/models.json", timeout=10).json()["models"] == []
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)


def test_capsule_registry_serve_over_tls(
    tmp_path: Path, capsule_cmd: list[str], subprocess_env: dict[str, str]
) -> None:
    """--tls-cert/--tls-key: the registry answers HTTPS to a client trusting the CA, and plain HTTP not at all."""
    import signal
    import ssl
    import subprocess
    import time

    from serving.certs import make_certificates

    from .conftest import free_port

    certs = make_certificates(tmp_path / "certs")
    trusting, other = ssl.create_default_context(cafile=certs.ca), ssl.create_default_context(cafile=certs.other_ca)
    port = free_port()
    server = subprocess.Popen([*capsule_cmd, "registry", "serve", "--registry", str(tmp_path / "reg"), "--port",
                               str(port), "--public-read", "--tls-cert", str(certs.server_cert), "--tls-key",
                               str(certs.server_key)], env=subprocess_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"https://127.0.0.1:{port}/api/v1/models", timeout=2, verify=trusting)
                break
            except httpx.TransportError:
                alive = server.poll() is None and time.monotonic() < deadline
                assert alive, server.stderr.read() if server.stderr else ""
                time.sleep(0.2)
        assert answer.json() == {"models": []}
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/api/v1/models", timeout=5)
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA refuses the server
            httpx.get(f"https://127.0.0.1:{port}/api/v1/models", timeout=5, verify=other)
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
