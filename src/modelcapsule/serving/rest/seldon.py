"""Seldon Core's v1 prediction API at ``/api/v1.0/predictions`` (the message itself: :mod:`.seldon_message`).

``/predict`` takes Seldon's message too; that route is shared with the plain recipe, see :mod:`.plain`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..dataplane import DataPlane
from ..openapi import ApiRoute
from .common import Call, RestProtocol, endpoint, model_param, read_json
from .seldon_message import ERROR_SCHEMA, SeldonRequest, answer_schema, error, request_schema

__all__ = ["PROTOCOLS", "routes"]


def routes(dataplane: DataPlane) -> list[ApiRoute]:
    """``/api/v1.0/predictions``, bound to ``dataplane``."""
    limit = dataplane.options.max_body_bytes

    async def predictions(request: Request, call: Call) -> Response:
        message = SeldonRequest(await read_json(request, limit))
        return message.answer(await dataplane.infer(call, message.decode, model_param(request)))

    return [
        ApiRoute("/api/v1.0/predictions", endpoint(dataplane, "seldon", error, predictions), methods=["POST"],
                 summary="Seldon prediction", tag="Plain / Seldon",
                 request=request_schema, answer=answer_schema, errors=ERROR_SCHEMA, statuses=(400, 404, 413, 500, 503),
                 applies=lambda loaded: loaded.signature is None or len(loaded.signature.inputs) == 1,
                 query_model=True)
    ]


PROTOCOLS = (RestProtocol("seldon", routes),)
