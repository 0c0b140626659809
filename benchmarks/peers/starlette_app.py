"""Minimal Starlette endpoints served by uvicorn: one calling ``model.predict``, one returning a constant.

``uvicorn benchmarks.peers.starlette_app:app`` is the minimal recipe (the model is the joblib file
named by ``BENCH_MODEL``, ``predict`` called in the endpoint); ``benchmarks.peers.starlette_app:floor``
answers every POST with the same bytes without reading anything: the HTTP floor of uvicorn here.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

model: Any = None
if "BENCH_MODEL" in os.environ:
    import joblib

    model = joblib.load(os.environ["BENCH_MODEL"])


async def _predict(request: Request) -> JSONResponse:
    rows = np.asarray((await request.json())["inputs"])
    return JSONResponse({"prediction": model.predict(rows).tolist()})


async def _constant(_request: Request) -> Response:
    return Response(b'{"prediction": [0]}', media_type="application/json")


app = Starlette(routes=[Route("/predict", _predict, methods=["POST"])])
floor = Starlette(routes=[Route("/predict", _constant, methods=["POST"])])
