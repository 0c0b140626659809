"""MLflow's scoring server protocol: ``POST /invocations``, ``/ping``, ``/health``, ``/version``.

Shapes follow MLflow's "Deploy MLflow models" documentation (MLflow 2.x): a JSON body holds exactly
one of ``dataframe_split`` ({columns, data}), ``dataframe_records``, ``instances`` or ``inputs``; a
``text/csv`` body is a table with a header row; the answer is ``{"predictions": [...]}``; errors are
``{"error_code": "BAD_REQUEST", "message": "..."}``.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from .. import schemas
from ..dataplane import DataPlane
from ..errors import InvalidRequestError, Status
from ..models import LoadedVersion
from ..openapi import ApiRoute
from ..transport import Decoded, server_version
from .common import Call, RestProtocol, endpoint, json_response, model_param, parse_json, read_body, to_list
from .tabular import from_records, from_rows

__all__ = ["PROTOCOLS", "routes"]

_JSON_TYPES = ("application/json", "", "application/x-www-form-urlencoded")  # curl -d sends the last one
_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_CODES = {
    400: "BAD_REQUEST",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "BAD_REQUEST",
    503: "TEMPORARILY_UNAVAILABLE",
}


def _error(message: str, status: Status) -> Response:
    return json_response(
        {"error_code": _CODES.get(status.http_status, "INTERNAL_ERROR"), "message": message},
        status.http_status,
    )


def _csv_rows(body: bytes) -> tuple[list[str], list[list[str]]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError("the CSV body is not UTF-8 text.") from None
    reader = csv.reader(io.StringIO(text))
    try:
        table = [row for row in reader if row]
    except csv.Error as exc:
        raise InvalidRequestError(f"the CSV body is malformed: {exc}.") from None
    if len(table) < 2:
        raise InvalidRequestError("the CSV body needs a header row and at least one row of values.")
    header, rows = table[0], table[1:]
    for i, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise InvalidRequestError(f"CSV line {i} has {len(row)} values; the header names {len(header)} columns.")
    return header, rows


def _numbers(rows: list[list[str]]) -> list[list[Any]]:
    """CSV cells as numbers where they parse as numbers (strings otherwise)."""

    def cell(text: str) -> Any:
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return text

    return [[cell(c) for c in row] for row in rows]


def _decode(loaded: LoadedVersion, body: bytes, content_type: str) -> Decoded:
    """A scoring request body (JSON with one of ``_KEYS``, or CSV with a header row) as the model's input."""
    output = loaded.validator.output_names[:1]
    if content_type == "text/csv":
        header, rows = _csv_rows(body)
        return Decoded(from_rows(loaded, _numbers(rows), header, "CSV"), output, "CSV")
    if content_type not in _JSON_TYPES:
        raise InvalidRequestError(f"content type {content_type!r} is not supported; send application/json or text/csv.")
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise InvalidRequestError(f"the JSON body must be an object with one of the keys {list(_KEYS)}.")
    keys = [k for k in _KEYS if k in doc]
    if len(keys) != 1:
        raise InvalidRequestError(
            f"the JSON body must hold exactly one of {list(_KEYS)}; it has {keys or sorted(doc)}."
        )
    key, value = keys[0], doc[keys[0]]
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise InvalidRequestError("dataframe_split must be an object {'columns': [...], 'data': [[...]]}.")
        return Decoded(from_rows(loaded, value["data"], value.get("columns"), "dataframe_split.data"), output,
                       "dataframe_split.data")
    if key == "dataframe_records" or (isinstance(value, list) and value and isinstance(value[0], dict)):
        return Decoded(from_records(loaded, value, key), output, key)
    return Decoded(from_rows(loaded, value, None, key), output, key)


def routes(dataplane: DataPlane) -> list[ApiRoute]:
    """The MLflow scoring server's routes, bound to ``dataplane``."""
    limit = dataplane.options.max_body_bytes

    async def invocations(request: Request, call: Call) -> Response:
        async def decode(loaded: LoadedVersion) -> Decoded:
            body = await read_body(request, limit)
            content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
            return _decode(loaded, body, content_type)

        done = await dataplane.infer(call, decode, model_param(request))
        return json_response({"predictions": to_list(next(iter(done.outputs.values())))})

    async def ping(request: Request, call: Call) -> Response:
        return PlainTextResponse("\n", 200 if dataplane.ready() else 503)

    async def version(request: Request, call: Call) -> Response:
        return PlainTextResponse(server_version())

    def route(path: str, handler: Any, methods: list[str], summary: str, **kw: Any) -> ApiRoute:
        return ApiRoute(path, endpoint(dataplane, "mlflow", _error, handler), methods=methods, summary=summary,
                        tag="MLflow", **kw)

    return [
        route("/invocations", invocations, ["POST"], "MLflow scoring (JSON or CSV)", request=_request,
              answer=_answer, errors=ERROR_SCHEMA, statuses=(400, 404, 413, 500, 503), query_model=True,
              applies=lambda loaded: schemas.single_input(loaded) is not None,
              description="A `text/csv` body with a header row is also taken."),
        route("/ping", ping, ["GET"], "MLflow health", **_PLAIN_TEXT),
        route("/health", ping, ["GET"], "MLflow health", **_PLAIN_TEXT),
        route("/version", version, ["GET"], "Server version", answer={"type": "string"}, answer_type="text/plain",
              statuses=()),
    ]


ERROR_SCHEMA = {"type": "object", "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
                "required": ["error_code", "message"]}
_PLAIN_TEXT: dict[str, Any] = {"answer": {"type": "string"}, "answer_type": "text/plain", "statuses": (503,),
                               "public": True,
                               "errors": None}


def _request(loaded: LoadedVersion) -> dict[str, Any]:
    """Exactly one of the scoring keys, read by ``loaded``'s input (columns for a DataFrame model)."""
    spec = schemas.single_input(loaded)
    assert spec is not None
    rows = schemas.batch(spec)
    if spec.columns is not None:
        split: dict[str, Any] = {"type": "object", "properties": {
            "columns": {"enum": [None, [c.name for c in spec.columns]]}, "data": rows}, "required": ["data"]}
        records = schemas.records(spec)
        values: dict[str, Any] = {"anyOf": [rows, records]}
    else:
        split = {"type": "object", "properties": {"data": rows}, "required": ["data"]}
        width = spec.shape[1] if len(spec.shape) == 2 and spec.shape[1] > 0 else 1
        item = schemas.element(spec.dtype)
        one = {"type": "object", "additionalProperties": item, "minProperties": width, "maxProperties": width}
        records = {"type": "array", "items": one, "minItems": 1}
        values = rows
    shapes = {"dataframe_split": split, "dataframe_records": records, "instances": values, "inputs": values}
    return {"anyOf": [
        {"type": "object", "properties": {key: schema}, "required": [key],
         "not": {"anyOf": [{"required": [other]} for other in _KEYS if other != key]}}
        for key, schema in shapes.items()
    ]}


def _answer(loaded: LoadedVersion) -> dict[str, Any]:
    return {"type": "object", "properties": {"predictions": schemas.output_values(loaded)},
            "required": ["predictions"]}

PROTOCOLS = (RestProtocol("mlflow", routes),)
