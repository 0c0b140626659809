"""The protocol registry: one table in the extension Registry shape, duplicates refused, and no two
adapters claim the same route."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.routing import Route

from modelcapsule.serving import DataPlane, Repository, ServerOptions
from modelcapsule.serving.rest import all_protocols, get_protocol, register_protocol

from .conftest import Models


def test_every_protocol_is_registered_once() -> None:
    assert [p.name for p in all_protocols()] == ["v2", "tfserving", "seldon", "plain", "mlflow"]
    with pytest.raises(ValueError, match="already registered"):
        register_protocol("v2", get_protocol("v2").routes)
    with pytest.raises(LookupError, match="unknown protocol 'soap'"):
        get_protocol("soap")


def test_no_two_adapters_claim_a_route(models: Models) -> None:
    plane = DataPlane(Repository([models.iris_path], ServerOptions()))
    owners: dict[tuple[str, str], str] = {}
    for protocol in all_protocols():
        routes = protocol.routes(plane)
        assert routes, f"protocol {protocol.name} has no routes"
        for route in routes:
            assert isinstance(route, Route)
            for method in sorted(route.methods or ()):
                key = (route.path, method)
                assert key not in owners, f"{key} claimed by {owners[key]} and {protocol.name}"
                owners[key] = protocol.name


_PLUGIN = '''
"""A third-party protocol: one route that echoes the served model names."""
from modelcapsule.serving.openapi import ApiRoute
from modelcapsule.serving.rest import RestProtocol
from starlette.responses import JSONResponse


def routes(dataplane):
    async def names(request):
        return JSONResponse(sorted(dataplane.models))

    return [ApiRoute("/echo/models", names, methods=["GET"], summary="Model names", tag="Echo")]


PROTOCOLS = (RestProtocol("echo", routes),)
'''

_CHECK = '''
import asyncio, json, sys
from pathlib import Path
import httpx
from modelcapsule.serving import DataPlane, Repository, ServerOptions, create_app
from modelcapsule.serving.rest import all_protocols, register_protocol

if sys.argv[2] == "register":
    import echo_protocol
    register_protocol("echo", echo_protocol.routes)
app = create_app(DataPlane(Repository([Path(sys.argv[1])], ServerOptions())), poll=False)

async def main():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
        doc = (await c.get("/openapi.json")).json()
        status = (await c.get("/echo/models")).status_code
    print(json.dumps({"protocols": [p.name for p in all_protocols()], "documented": "/echo/models" in doc["paths"],
                      "status": status}))

asyncio.run(main())
'''


@pytest.mark.parametrize("how", ["register", "entry point"])
def test_a_third_party_protocol_is_served_and_documented(
    how: str, models: Models, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    (tmp_path / "echo_protocol.py").write_text(_PLUGIN)
    if how == "entry point":  # an installed distribution declaring the group, as pip would leave it
        info = tmp_path / "echo_protocol-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-protocol\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text("[modelcapsule.protocols]\necho = echo_protocol\n")
    env = {**subprocess_env, "PYTHONPATH": os.pathsep.join([str(tmp_path), subprocess_env["PYTHONPATH"]])}
    out = subprocess.run([sys.executable, "-c", _CHECK, str(models.iris_path), how], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    report = json.loads(out.stdout.splitlines()[-1])
    assert report == {"protocols": ["v2", "tfserving", "seldon", "plain", "mlflow", "echo"], "documented": True,
                      "status": 200}
