"""The classic Flask recipe, ``POST /predict {"inputs": [[...]]}`` → ``{"prediction": [...]}``.

``/predict`` is also Seldon's path: the body tells them apart (``data`` is Seldon's message, read and
answered by :mod:`.seldon_message`; ``inputs`` the plain recipe). Records (``[{"col": value}, ...]``) are
accepted for models trained on a DataFrame.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .. import schemas
from ..dataplane import DataPlane
from ..errors import InvalidRequestError, Status
from ..models import LoadedVersion
from ..openapi import ApiRoute
from ..transport import Decoded, Decoder
from . import seldon_message
from .common import Call, RestProtocol, endpoint, json_response, model_param, read_json, to_list
from .tabular import from_records, from_rows

__all__ = ["PROTOCOLS", "routes"]


def _error(message: str, status: Status) -> Response:
    return json_response({"error": message}, status.http_status)


def _decoder(rows: Any) -> Decoder:
    """Reads the recipe's ``inputs`` (rows, or records for a DataFrame model) for the resolved version."""

    async def decode(loaded: LoadedVersion) -> Decoded:
        if isinstance(rows, list) and rows and isinstance(rows[0], dict):
            raw = from_records(loaded, rows, "inputs")
        else:
            raw = from_rows(loaded, rows, None, "inputs")
        return Decoded(raw, loaded.validator.output_names[:1], "inputs")

    return decode


def routes(dataplane: DataPlane) -> list[ApiRoute]:
    """``/predict``, bound to ``dataplane``."""
    limit = dataplane.options.max_body_bytes

    async def predict(request: Request, call: Call) -> Response:
        doc = await read_json(request, limit)
        model = model_param(request)
        if "data" in doc:
            call.protocol = "seldon"
            message = seldon_message.SeldonRequest(doc)
            try:
                return message.answer(await dataplane.infer(call, message.decode, model))
            except InvalidRequestError as exc:
                return seldon_message.error(str(exc), exc.status)
        if "inputs" not in doc:
            raise InvalidRequestError(
                'send {"inputs": [[...], ...]} (one list of feature values per row) or, Seldon\'s way, '
                '{"data": {"ndarray": [[...]]}}.'
            )
        done = await dataplane.infer(call, _decoder(doc["inputs"]), model)
        return json_response({"prediction": to_list(next(iter(done.outputs.values())))})

    return [
        ApiRoute("/predict", endpoint(dataplane, "plain", _error, predict), methods=["POST"],
                 summary="Plain recipe {inputs} or Seldon {data}", tag="Plain / Seldon",
                 request=_request, answer=_answer, errors={"anyOf": [ERROR_SCHEMA, seldon_message.ERROR_SCHEMA]},
                 statuses=(400, 404, 413, 500, 503), applies=_applies, query_model=True)
    ]


ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def _applies(loaded: LoadedVersion) -> bool:
    return schemas.single_input(loaded) is not None


def _request(loaded: LoadedVersion) -> dict[str, Any]:
    """The recipe's body (rows, or records for a DataFrame model), or Seldon's message."""
    spec = schemas.single_input(loaded)
    assert spec is not None
    rows = schemas.records(spec) if spec.columns is not None else schemas.batch(spec)
    plain = {"type": "object", "properties": {"inputs": rows}, "required": ["inputs"],
             "not": {"required": ["data"]}}
    return {"anyOf": [plain, seldon_message.request_schema(loaded)]}


def _answer(loaded: LoadedVersion) -> dict[str, Any]:
    plain = {"type": "object", "properties": {"prediction": schemas.output_values(loaded)},
             "required": ["prediction"]}
    return {"anyOf": [plain, seldon_message.answer_schema(loaded)]}


PROTOCOLS = (RestProtocol("plain", routes),)
