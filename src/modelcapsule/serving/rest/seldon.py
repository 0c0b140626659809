"""Seldon Core's v1 prediction API at ``/api/v1.0/predictions`` (the message itself: :mod:`.seldon_message`).

``/predict`` takes Seldon's message too; that route is shared with the plain recipe, see :mod:`.plain`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..dataplane import DataPlane
from ..openapi import ApiRoute
from .common import Call, RestProtocol, endpoint, read_json
from .seldon_message import SeldonRequest, error

__all__ = ["PROTOCOLS", "routes"]


def routes(dataplane: DataPlane) -> list[ApiRoute]:
    """``/api/v1.0/predictions``, bound to ``dataplane``."""
    limit = dataplane.options.max_body_bytes

    async def predictions(request: Request, call: Call) -> Response:
        message = SeldonRequest(await read_json(request, limit))
        return message.answer(await dataplane.infer(call, message.decode, request.query_params.get("model") or None))

    return [
        ApiRoute("/api/v1.0/predictions", endpoint(dataplane, "seldon", error, predictions), methods=["POST"],
                 summary="Seldon prediction", tag="Plain / Seldon")
    ]


PROTOCOLS = (RestProtocol("seldon", routes),)
