"""The classic Flask recipe, ``POST /predict {"inputs": [[...]]}`` → ``{"prediction": [...]}``.

``/predict`` is also Seldon's path: the body tells them apart (``data`` is Seldon, ``inputs`` the plain
recipe). Records (``[{"col": value}, ...]``) are accepted for models trained on a DataFrame.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..dataplane import DataPlane
from ..errors import InvalidRequestError, Status
from . import seldon
from .common import Call, endpoint, json_response, read_json, to_list
from .tabular import from_records, from_rows

__all__ = ["routes"]


def _error(message: str, status: Status) -> Response:
    return json_response({"error": message}, status.http_status)


def routes(dataplane: DataPlane) -> list[BaseRoute]:
    limit = dataplane.options.max_body_bytes

    async def predict(request: Request, call: Call) -> Response:
        doc = await read_json(request, limit)
        if "data" in doc:
            call.protocol = "seldon"
            try:
                return await seldon.handle(dataplane, request, call, doc)
            except InvalidRequestError as exc:
                return seldon.error(str(exc), exc.status)
        if "inputs" not in doc:
            raise InvalidRequestError(
                'send {"inputs": [[...], ...]} (one list of feature values per row) or, Seldon\'s way, '
                '{"data": {"ndarray": [[...]]}}.'
            )
        call.model = dataplane.default_model(request.query_params.get("model"))
        loaded = dataplane.resolve(call.model)
        call.version = loaded.version_text
        rows = doc["inputs"]
        if isinstance(rows, list) and rows and isinstance(rows[0], dict):
            inputs = from_records(loaded, rows, "inputs")
        else:
            inputs = from_rows(loaded, rows, None, "inputs")
        output = loaded.validator.output_names[0]
        result = (await dataplane.predict(loaded, inputs, (output,)))[output]
        return json_response({"prediction": to_list(result)})

    return [Route("/predict", endpoint(dataplane, "plain", _error, predict), methods=["POST"])]
