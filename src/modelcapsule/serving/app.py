"""The ASGI application: every protocol's routes over one data plane, plus metrics, docs and a page.

:func:`create_app` takes the data plane and a Prometheus registry from the caller (no global state), so
several apps can live in one process (tests do) and each has its own metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .auth import Tokens
from .dataplane import DataPlane
from .errors import ServingError, Status
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .openapi import ApiRoute, Operation, openapi
from .rest import all_protocols
from .rest.common import json_response
from .transport import server_version
from .ui_source import ServedSource

__all__ = ["create_app"]

log = logging.getLogger("modelcapsule.serving")
_TAG = "Operations"


def create_app(dataplane: DataPlane, *, poll: bool = True) -> ASGIApp:
    """The server's ASGI app. On start-up it loads the repository (unless already loaded) and, when
    ``poll`` is true, re-scans it every ``options.poll_seconds``; on shutdown it drains queued calls."""

    tokens = dataplane.options.tokens

    def admin(page: Callable[[Request], Response]) -> Callable[[Request], Awaitable[Response]]:
        """An admin route: behind the bearer tokens when the server has some."""

        async def answer(request: Request) -> Response:
            if tokens is not None:
                try:
                    tokens.check(request.headers.get("authorization"))
                except ServingError as exc:
                    response = json_response({"error": str(exc)}, exc.status.http_status)
                    if exc.status is Status.UNAUTHENTICATED:
                        response.headers["www-authenticate"] = "Bearer"
                    return response
            return page(request)

        return answer

    def metrics(request: Request) -> Response:
        return Response(dataplane.metrics.registry.expose(), media_type=METRICS_CONTENT_TYPE)

    def docs(request: Request) -> Response:
        return json_response(openapi(routes, server_version(), dataplane, security=tokens is not None))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not dataplane.models:
            await dataplane.reconcile()
        poller = asyncio.create_task(_poll(dataplane)) if poll else None
        stop_watching = dataplane.watch_repository() if poll else None
        try:
            yield
        finally:
            if stop_watching is not None:
                stop_watching()
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            await dataplane.close()

    from ..ui.pages import routes as ui_routes  # the pages at / (models, cards, try-it form)

    routes: list[BaseRoute] = [
        *_described(ui_routes(ServedSource(dataplane)), tokens),
        ApiRoute("/metrics", admin(metrics), methods=["GET"], summary="Prometheus metrics", tag=_TAG,
                 answer={"type": "string"}, answer_type="text/plain", statuses=()),
        ApiRoute("/openapi.json", admin(docs), methods=["GET"], summary="This OpenAPI description", tag=_TAG,
                 answer={"type": "object"}, statuses=()),
    ]
    inference: list[BaseRoute] = []
    for protocol in all_protocols():
        inference.extend(protocol.routes(dataplane))
    routes.extend(inference)
    app = Starlette(routes=routes, lifespan=lifespan)
    posts = [r for r in routes if isinstance(r, Route) and "POST" in (r.methods or ())]
    return InferenceFastLane(app, posts, fast={id(r) for r in inference})


class InferenceFastLane:
    """Sends POST requests for the inference routes straight to their endpoints; everything else (and
    any POST under a ``root_path``) goes through the Starlette app.

    ``posts`` are every POST route in the app's order, so that a path is matched as the app's router
    would; only those in ``fast`` (the protocols' routes, whose endpoints check the bearer tokens
    themselves) are called directly: a request matching any other POST route (a page's form, guarded
    by its route's ASGI app) goes through the app.

    Why: each inference endpoint already turns every exception into its protocol's error answer, so
    Starlette's error and exception middleware, its router (a regular expression per route, tried in
    order) and its send wrappers only add cost: about a sixth of the event loop's time per request
    when a fast model (ONNX, a linear model) answers in microseconds. The routes, their path
    parameters and their answers are the same objects either way.
    """

    def __init__(self, app: Starlette, posts: list[Route], fast: set[int]) -> None:
        self.app = app
        self._posts = [(r.path_regex, r.param_convertors, r.endpoint if id(r) in fast else None) for r in posts]
        self._paths: dict[str, tuple[Any, dict[str, Any]]] = {}
        """Each path seen (up to :data:`_PATHS_KEPT`): its endpoint (None: the app's) and path parameters.
        Clients repeat the same few paths, and matching one walks a regular expression per route."""

    def route(self, path: str) -> tuple[Any, dict[str, Any]]:
        """The endpoint called directly for a POST to ``path`` (None: the app answers it) and its path
        parameters, matched as the app's router matches them."""
        found = self._paths.get(path)
        if found is None:
            found = None, {}
            for regex, convertors, endpoint in self._posts:
                match = regex.match(path)
                if match is not None:
                    found = endpoint, {k: convertors[k].convert(v) for k, v in match.groupdict().items()}
                    break
            if len(self._paths) >= _PATHS_KEPT:
                self._paths.clear()
            self._paths[path] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint, params = self.route(scope["path"])
            if endpoint is not None:
                scope["path_params"] = dict(params)
                scope["app"] = self.app
                response = await endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


_PATHS_KEPT = 1024


async def _poll(dataplane: DataPlane) -> None:
    """Keep the served versions in step with the repository until cancelled: a scan every poll, or at once
    when the repository announces a change (a PostgreSQL registry's NOTIFY)."""
    while True:
        await dataplane.wait_for_change(dataplane.options.poll_seconds)
        try:
            await dataplane.reconcile()
        except (OSError, ValueError) as exc:
            log.error(
                "scanning the repository failed (%s); trying again in %.1f s",
                exc,
                dataplane.options.poll_seconds,
            )


_PAGES = "Pages"
_HTML: dict[str, object] = {"answer": {"type": "string"}, "answer_type": "text/html", "statuses": (404,)}
_JSON: dict[str, object] = {"answer": {"type": "object"}, "statuses": (404,)}


def _page(path: str, summary: str, kind: dict[str, object]) -> Operation:
    return Operation(path, "get", summary, _PAGES, **kind)  # type: ignore[arg-type]


_PAGE_OPERATIONS: dict[str, tuple[Operation, ...]] = {
    "/": (_page("/", "Models page", _HTML),),
    "/models.{fmt:str}": (_page("/models.json", "Models (the models page's JSON twin)", _JSON),),
    "/models/{name}": (
        _page("/models/{model}", "A model's page: versions, aliases, history", _HTML),
        _page("/models/{model}.json", "A model's versions, aliases and history (JSON twin)", _JSON),
    ),
    "/models/{name}/versions/{version}": (_page("/models/{model}/versions/{version}", "A version's model card",
                                                _HTML),),
    "/models/{name}/compare": (_page("/models/{model}/compare", "Two versions side by side (?a=V&b=W)", _HTML),),
    "/models/{name}/compare.{fmt:str}": (
        _page("/models/{model}/compare.json", "Two versions side by side (JSON twin)", _JSON),
    ),
}
"""What the pages' routes answer, for the OpenAPI document (the pages live in ``ui/``, which knows nothing of
serving's route descriptions). The try-it form's POST is the page's own endpoint, not an API, and is left
out: clients predict through the protocols, which the document describes per model."""


def _described(routes: list[BaseRoute], tokens: Tokens | None) -> list[BaseRoute]:
    """The UI's routes, each carrying the operations it answers (static files are not described), and
    behind the bearer tokens when the server has some, like every admin route."""
    for route in routes:
        operations = _PAGE_OPERATIONS.get(getattr(route, "path", ""))
        if operations is not None:
            route.operations = operations  # type: ignore[attr-defined]
        if tokens is not None and isinstance(route, Route):
            route.app = _guarded(route.app, tokens)
    return routes


def _guarded(app: ASGIApp, tokens: Tokens) -> ASGIApp:
    """``app`` answering 401/403 (JSON, ``WWW-Authenticate: Bearer``) unless the request has a valid token."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        header = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"authorization"), None)
        try:
            tokens.check(header)
        except ServingError as exc:
            response = json_response({"error": str(exc)}, exc.status.http_status)
            if exc.status is Status.UNAUTHENTICATED:
                response.headers["www-authenticate"] = "Bearer"
            await response(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded
