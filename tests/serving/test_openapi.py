"""/openapi.json is generated from the routes the app registered and the models served: each route
declares its operations, each documented operation is answered by the route that declares it, and
nothing is listed twice."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from starlette.routing import Match, Mount, Route

from modelcapsule.serving import DataPlane, Repository, ServerOptions, create_app
from modelcapsule.serving.app import InferenceFastLane
from modelcapsule.serving.openapi import ApiRoute, Operation, openapi
from modelcapsule.serving.transport import server_version

from .conftest import Models

EXAMPLES = {"model": "iris", "version": "1", "label": "stable"}

# what the OpenAPI document listed before it was generated: every one of these is still described
DESCRIBED_BEFORE = [
    ("/v2", "get"), ("/v2/health/live", "get"), ("/v2/health/ready", "get"), ("/v2/models/{model}", "get"),
    ("/v2/models/{model}/ready", "get"), ("/v2/models/{model}/infer", "post"),
    ("/v2/models/{model}/versions/{version}", "get"), ("/v2/models/{model}/versions/{version}/infer", "post"),
    ("/v1/models/{model}", "get"), ("/v1/models/{model}/metadata", "get"), ("/v1/models/{model}:predict", "post"),
    ("/v1/models/{model}:classify", "post"), ("/v1/models/{model}:regress", "post"),
    ("/v1/models/{model}/versions/{version}:predict", "post"), ("/v1/models/{model}/labels/{label}:predict", "post"),
    ("/predict", "post"), ("/api/v1.0/predictions", "post"), ("/invocations", "post"), ("/ping", "get"),
    ("/health", "get"), ("/version", "get"), ("/metrics", "get"), ("/", "get"),
]


@pytest.fixture(scope="module")
def routes(models: Models) -> list[ApiRoute]:
    app = create_app(DataPlane(Repository([models.iris_path], ServerOptions())), poll=False)
    assert isinstance(app, InferenceFastLane)
    # the pages' static files and their try-it form's POST are the page's own, no API
    found = [r for r in app.app.routes
             if not isinstance(r, Mount) and not getattr(r, "path", "").endswith("/versions/{version}/predict")]
    assert all(getattr(r, "operations", None) for r in found), "every route declares what it answers"
    return found  # type: ignore[return-value]


def test_the_document_is_exactly_what_the_routes_declare(routes: list[ApiRoute]) -> None:
    doc = openapi(routes, server_version())
    declared = [(op.path, op.method) for route in routes for op in route.operations]
    assert len(declared) == len(set(declared)), "an operation is declared twice"
    assert sorted((path, method) for path, ops in doc["paths"].items() for method in ops) == sorted(declared)
    assert set(DESCRIBED_BEFORE) <= set(declared)
    assert all(route.operations for route in routes)


def test_every_documented_operation_is_answered_by_its_route(routes: list[ApiRoute]) -> None:
    for route in routes:
        for op in route.operations:
            path = re.sub(r"{(\w+)}", lambda m: EXAMPLES[m[1]], op.path)
            scope = {"type": "http", "path": path, "method": op.method.upper()}
            match, _ = route.matches(scope)
            assert match is Match.FULL, f"{op.method.upper()} {op.path} is not answered by {route.path}"


def test_path_parameters_and_bodies_come_from_the_declaration() -> None:
    async def nothing() -> None:
        return None

    route = ApiRoute("/things/{model}/versions/{version}", nothing, methods=["GET", "POST"], summary="Things",
                     tag="Demo")
    doc = openapi([route, Route("/undocumented", nothing)], "9.9")
    ops = doc["paths"]["/things/{model}/versions/{version}"]
    assert sorted(ops) == ["get", "post"] and "/undocumented" not in doc["paths"]
    assert [p["name"] for p in ops["get"]["parameters"]] == ["model", "version"]
    assert ops["get"]["parameters"][1]["schema"] == {"type": "integer"}
    assert "requestBody" not in ops["get"] and "application/json" in ops["post"]["requestBody"]["content"]
    assert doc["info"]["version"] == "9.9"
    listed = Operation("/a/{label}", "get", "A", "Demo")
    assert listed.describe()["parameters"][0]["name"] == "label"


def test_the_served_document_is_the_generated_one(models: Models) -> None:
    plane = DataPlane(Repository([models.iris_path], ServerOptions()))
    asyncio.run(plane.reconcile())
    plane.reset_loop_state()
    app = create_app(plane, poll=False)
    assert isinstance(app, InferenceFastLane)

    async def fetch() -> object:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            return (await c.get("/openapi.json")).json()

    served = asyncio.run(fetch())
    assert served == openapi(app.app.routes, server_version(), plane)
    assert "/v2/models/iris/versions/1/infer" in served["paths"]  # per served model and version
