"""Routes that describe themselves, and the OpenAPI 3.1 document built from them and the served models.

Every route the server registers is an :class:`ApiRoute` carrying the :class:`Operation` s it answers
(path template, method, summary, request body and answers). ``/openapi.json`` is generated per request
from the app's routes **and the models served at that moment**: a path with ``{model}``, ``{version}`` or
``{label}`` is listed once per served model, version and label, with the request and answer schemas of
that very version (input names, shapes, dtypes, column names from its signature, see :mod:`.schemas`).
So a request the document calls valid is one the server accepts, and a wrong method on a listed path is
a 405 whose ``Allow`` names the listed methods. Without a data plane (``openapi(routes, version)``) the
templates are listed as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute, Route

if TYPE_CHECKING:
    from .dataplane import DataPlane
    from .models import LoadedVersion

__all__ = ["JSON_BODY", "ApiRoute", "Operation", "openapi"]

Schema = dict[str, Any]
PerModel = Callable[["LoadedVersion"], Schema]
"""A JSON Schema built for one served model version."""

JSON_BODY: Mapping[str, Any] = {"application/json": {"schema": {"type": "object"}}}
"""The usual request body: a JSON object."""

_PARAMETERS: dict[str, dict[str, Any]] = {
    "model": {"type": "string"},
    "version": {"type": "integer"},
    "label": {"type": "string"},
}
_PLACEHOLDER = re.compile(r"{([^}:]+)(?::[^}]+)?}")
_DESCRIPTIONS = {
    200: "OK",
    400: "Bad request: the message names the field and what was expected",
    401: "No or malformed bearer token",
    403: "The token is not allowed",
    404: "Unknown model, version or label",
    413: "Request body over the server's limit",
    500: "The model failed (the message carries a request id)",
    503: "Not ready, or overloaded (see Retry-After)",
    504: "The request's deadline (X-Request-Timeout) passed before the model ran it",
}
_TIMEOUT_PARAMETER = {
    "name": "X-Request-Timeout",
    "in": "header",
    "required": False,
    "description": "Seconds the client waits; a request still waiting for the model after that is not computed "
                   "(504).",
    "schema": {"type": "number", "exclusiveMinimum": 0},
}


@dataclass(frozen=True)
class Operation:
    """One operation as the OpenAPI document describes it.

    ``body``: media type → ``{"schema": ...}`` of the request body (``None``: no body), or ``request``:
    the JSON body's schema for a served model version. ``answer``: the 200 answer's schema (static, or
    per model version), in ``answer_type``. ``errors``: the protocol's error body schema, answered with
    each status of ``statuses``. ``applies``: whether the operation exists for a model version (TF
    Serving's ``:classify`` only for classifiers). ``query_model``: the route names its model with
    ``?model=NAME`` (needed when several are served)."""

    path: str
    method: str
    summary: str
    tag: str
    body: Mapping[str, Any] | None = None
    request: PerModel | None = None
    answer: Schema | PerModel | None = None
    answer_type: str = "application/json"
    errors: Schema | None = None
    statuses: tuple[int, ...] = (400, 404, 503)
    applies: Callable[[LoadedVersion], bool] | None = None
    query_model: bool = False
    description: str = ""
    public: bool = False
    """A health route: no token needed even when the server has tokens."""

    def describe(self, loaded: LoadedVersion | None = None, params: list[dict[str, Any]] | None = None,
                 body: Schema | None = None, answer: Schema | None = None) -> dict[str, Any]:
        """This operation's OpenAPI object; ``loaded``: the served version it is described for."""
        op: dict[str, Any] = {"summary": self.summary, "tags": [self.tag]}
        if self.description:
            op["description"] = self.description
        if params is None:
            params = [
                {"name": name, "in": "path", "required": True,
                 "schema": dict(_PARAMETERS.get(name, {"type": "string"}))}
                for name in _PLACEHOLDER.findall(self.path)
            ]
        if self.request is not None:  # an inference operation
            params = [*params, _TIMEOUT_PARAMETER]
        if params:
            op["parameters"] = params
        if body is None and self.request is not None and loaded is not None:
            body = self.request(loaded)
        if body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        elif self.body is not None:
            op["requestBody"] = {"content": {k: dict(v) for k, v in self.body.items()}}
        if answer is None:
            answer = self.answer(loaded) if callable(self.answer) and loaded is not None else (
                self.answer if isinstance(self.answer, dict) else None)
        ok: dict[str, Any] = {"description": "OK"}
        if answer is not None:
            ok["content"] = {self.answer_type: {"schema": answer}}
        responses: dict[str, Any] = {"200": ok}
        for status in (*self.statuses, 504) if self.request is not None else self.statuses:
            responses[str(status)] = {"description": _DESCRIPTIONS.get(status, "Error")}
            if self.errors is not None:
                responses[str(status)]["content"] = {"application/json": {"schema": self.errors}}
        op["responses"] = responses
        return op


class ApiRoute(Route):
    """A Starlette route that declares the operations it answers.

    By default one operation per method, at the route's own path, with ``summary`` and ``tag`` (and
    ``body`` for POST) and ``describe`` (the other :class:`Operation` fields); pass ``operations`` when
    the path is a pattern that answers several."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: list[str],
        summary: str,
        tag: str,
        body: Mapping[str, Any] | None = JSON_BODY,
        operations: Iterable[Operation] | None = None,
        **describe: Any,
    ) -> None:
        super().__init__(path, endpoint, methods=methods)
        if operations is None:
            template = _PLACEHOLDER.sub(lambda m: "{" + m[1] + "}", path)
            operations = [
                Operation(template, m.lower(), summary, tag, body if m == "POST" else None, **describe)
                for m in methods
                if m != "HEAD"
            ]
        self.operations = tuple(operations)


def openapi(routes: Iterable[BaseRoute], version: str, dataplane: DataPlane | None = None,
            *, security: bool = False) -> dict[str, Any]:
    """The document for ``routes``, per model served by ``dataplane`` (built per call; it is small).

    ``security``: inference and admin routes need a bearer token (``--token-file``)."""
    paths: dict[str, Any] = {}
    for route in routes:
        for op in getattr(route, "operations", ()):
            if dataplane is None:
                paths.setdefault(op.path, {})[op.method] = op.describe()
                continue
            for path, described in _expand(op, dataplane):
                if security and not op.public:
                    described["security"] = [{"bearer": []}]
                    described["responses"].setdefault("401", {"description": _DESCRIPTIONS[401]})
                    described["responses"].setdefault("403", {"description": _DESCRIPTIONS[403]})
                    if op.errors is not None:
                        for status in ("401", "403"):
                            described["responses"][status]["content"] = {
                                "application/json": {"schema": op.errors}}
                paths.setdefault(path, {})[op.method] = described
    doc: dict[str, Any] = {"openapi": "3.1.0", "info": {"title": "modelcapsule serving", "version": version},
                           "paths": paths}
    if security:
        doc["components"] = {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
    return doc


def _expand(op: Operation, dataplane: DataPlane) -> list[tuple[str, dict[str, Any]]]:
    """``op`` for each served model, version and label its path names."""
    from .errors import ServingError

    names = _PLACEHOLDER.findall(op.path)
    if "model" not in names:
        if op.query_model:
            return _query_model(op, dataplane)
        return [(op.path, op.describe(params=[]))]
    out: list[tuple[str, dict[str, Any]]] = []
    for model, entry in sorted(dataplane.models.items()):
        targets: list[tuple[str, LoadedVersion | None]] = []
        base = op.path.replace("{model}", model)
        if "version" in names:
            targets = [(base.replace("{version}", str(v.version)), v) for v in entry.available()]
        elif "label" in names:
            for label in sorted(entry.labels):
                try:
                    targets.append((base.replace("{label}", label), dataplane.resolve(model, None, label)))
                except ServingError:
                    continue
        else:
            try:
                targets = [(base, dataplane.resolve(model))]
            except ServingError:
                targets = [(base, None)] if op.request is None else []
        for path, loaded in targets:
            if loaded is not None and op.applies is not None and not op.applies(loaded):
                continue
            out.append((path, op.describe(loaded, params=[])))
    return out


def _query_model(op: Operation, dataplane: DataPlane) -> list[tuple[str, dict[str, Any]]]:
    """A route that names its model with ``?model=NAME``, listed when one model is served (its body then
    is that model's). With several, OpenAPI cannot tie the body to the query parameter, so the route is
    left out rather than described wrongly: the per-model routes describe each model exactly."""
    from .errors import ServingError

    if len(dataplane.models) != 1 or op.request is None:
        return []
    name = next(iter(dataplane.models))
    try:
        loaded = dataplane.resolve(name)
    except ServingError:
        return []
    if op.applies is not None and not op.applies(loaded):
        return []
    param = {"name": "model", "in": "query", "required": False, "schema": {"enum": [name]}}
    return [(op.path, op.describe(loaded, params=[param]))]
