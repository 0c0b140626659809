"""Inference POSTs skip Starlette's router and middleware, and answer exactly as through them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from modelcapsule.serving import DataPlane, Repository, ServerOptions, create_app
from modelcapsule.serving.app import InferenceFastLane

from .conftest import Models


@pytest.fixture
def lane(models: Models) -> InferenceFastLane:
    plane = DataPlane(Repository([models.iris_path], ServerOptions()))
    asyncio.run(plane.reconcile())
    plane.reset_loop_state()
    app = create_app(plane, poll=False)
    assert isinstance(app, InferenceFastLane)
    return app


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


async def answers(app: Any, models: Models) -> list[tuple[int, Any]]:
    rows = models.X[:3].tolist()
    async with client(app) as c:
        calls = [
            await c.post("/v2/models/iris/infer", json={"inputs": [
                {"name": "input", "shape": [3, 4], "datatype": "FP64", "data": rows}]}),
            await c.post("/v1/models/iris:predict", json={"instances": rows}),
            await c.post("/predict", json={"inputs": rows}),
            await c.post("/v2/models/iris/infer", content=b"{not json"),
            await c.post("/v2/models/nobody/infer", json={"inputs": []}),
            await c.post("/v1/models/iris:predict", json={"instances": [[1.0, 2.0]]}),
        ]
    return [(r.status_code, _without_ids(r.json())) for r in calls]


def _without_ids(doc: Any) -> Any:
    return {k: v for k, v in doc.items() if k != "id"} if isinstance(doc, dict) else doc


def test_answers_and_errors_are_the_same_with_and_without_the_fast_lane(lane: InferenceFastLane,
                                                                          models: Models) -> None:
    fast, through_starlette = asyncio.run(answers(lane, models)), asyncio.run(answers(lane.app, models))
    assert fast == through_starlette
    assert [status for status, _ in fast] == [200, 200, 200, 400, 404, 400]
    assert fast[2][1] == {"prediction": models.iris.predict(models.X[:3]).tolist()}


def test_other_methods_and_paths_still_go_through_starlette(lane: InferenceFastLane) -> None:
    async def check() -> None:
        async with client(lane) as c:
            assert (await c.get("/v2/models/iris/infer")).status_code == 405
            assert (await c.post("/nowhere", json={})).status_code == 404
            assert (await c.get("/v2/health/ready")).json() == {"ready": True}

    asyncio.run(check())
