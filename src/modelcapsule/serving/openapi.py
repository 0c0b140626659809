"""Routes that describe themselves, and the OpenAPI 3.1 document built from them at ``/openapi.json``.

Every route the server registers is an :class:`ApiRoute` carrying the :class:`Operation` s it answers
(path template, method, summary, request body); the document is generated from the app's routes, so
a route added or removed changes it, and there is no second list to keep in step. A route whose path
is matched by pattern (TF Serving's ``/v1/models/{rest:path}``) lists each operation it answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute, Route

__all__ = ["JSON_BODY", "ApiRoute", "Operation", "openapi"]

JSON_BODY: Mapping[str, Any] = {"application/json": {"schema": {"type": "object"}}}
"""The usual request body: a JSON object."""

_PARAMETERS: dict[str, dict[str, Any]] = {
    "model": {"type": "string"},
    "version": {"type": "integer"},
    "label": {"type": "string"},
}
_PLACEHOLDER = re.compile(r"{([^}:]+)(?::[^}]+)?}")
_RESPONSES = {
    "200": {"description": "OK"},
    "400": {"description": "Bad request"},
    "404": {"description": "Unknown model or version"},
}


@dataclass(frozen=True)
class Operation:
    """One operation as the OpenAPI document describes it.

    ``body``: media type → ``{"schema": ...}`` of the request body (``None``: no body)."""

    path: str
    method: str
    summary: str
    tag: str
    body: Mapping[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        op: dict[str, Any] = {"summary": self.summary, "tags": [self.tag], "responses": dict(_RESPONSES)}
        params = [
            {"name": name, "in": "path", "required": True, "schema": dict(_PARAMETERS.get(name, {"type": "string"}))}
            for name in _PLACEHOLDER.findall(self.path)
        ]
        if params:
            op["parameters"] = params
        if self.body is not None:
            op["requestBody"] = {"content": {k: dict(v) for k, v in self.body.items()}}
        return op


class ApiRoute(Route):
    """A Starlette route that declares the operations it answers.

    By default one operation per method, at the route's own path, with ``summary`` and ``tag`` (and
    ``body`` for POST); pass ``operations`` when the path is a pattern that answers several."""

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
    ) -> None:
        super().__init__(path, endpoint, methods=methods)
        if operations is None:
            operations = [
                Operation(path, m.lower(), summary, tag, body if m == "POST" else None)
                for m in methods
                if m != "HEAD"
            ]
        self.operations = tuple(operations)


def openapi(routes: Iterable[BaseRoute], version: str) -> dict[str, Any]:
    """The document for ``routes`` (built per call; it is small)."""
    paths: dict[str, Any] = {}
    for route in routes:
        for op in getattr(route, "operations", ()):
            paths.setdefault(op.path, {})[op.method] = op.describe()
    return {"openapi": "3.1.0", "info": {"title": "modelcapsule serving", "version": version}, "paths": paths}
