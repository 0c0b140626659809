"""The registry's REST API (DESIGN §8) on Starlette: ``create_app(registry)`` serves a
:class:`~modelcapsule.registry.local.LocalRegistry` to ``mc.Registry("http://…")`` clients and to anyone with
``curl``. JSON in and out; errors are ``{"error": {"code", "message"}}``; uploads are streamed to the blob
directory as they arrive, never held whole in memory; every request but the OpenAPI document needs a
bearer token (reads too, unless the server runs with ``public_read``). The token's name is the actor
recorded in every event it causes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from .actors import Actor
from .blobs import StagedBlob
from .errors import AuthenticationError, to_wire
from .local import LocalRegistry
from .openapi import openapi

__all__ = ["DEFAULT_MAX_BODY", "create_app"]

DEFAULT_MAX_BODY = 2 << 30
Handler = Callable[[Request, LocalRegistry], Awaitable[Response]]


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ValueError("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the request body must be a JSON object")
    return data


def _int(value: str, what: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    return int(value)


def _tags(values: list[str]) -> dict[str, str]:
    tags = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"tag {item!r} must be KEY=VALUE")
        tags[key] = value
    return tags


class _App:
    def __init__(self, registry: LocalRegistry, *, public_read: bool, max_body: int) -> None:
        self.registry, self.public_read, self.max_body = registry, public_read, max_body

    def actor(self, request: Request) -> Actor:
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        if header and (scheme.lower() != "bearer" or not secret.strip()):
            raise AuthenticationError("the Authorization header must be 'Bearer TOKEN'")
        if secret.strip():
            actor = self.registry.authenticate(secret.strip())
            if actor is None:
                raise AuthenticationError("this token is unknown or revoked; ask an admin for a new one")
            return actor
        if self.public_read and request.method in ("GET", "HEAD"):
            return Actor("anonymous", "read")
        raise AuthenticationError("this registry needs a token: send 'Authorization: Bearer TOKEN' (tokens come from "
                                  "`capsule registry token create NAME --role read|write|admin`)")

    def route(self, path: str, handler: Handler, methods: list[str]) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                declared = int(request.headers.get("content-length") or 0)
                if declared > self.max_body:
                    return error_response(413, "too_large", f"the body is {declared:,} bytes, over this server's "
                                                            f"limit of {self.max_body:,}")
                registry = self.registry.as_actor(self.actor(request))
                return await handler(request, registry)
            except _TooLarge as exc:
                return error_response(413, "too_large", str(exc))
            except Exception as exc:
                wire = to_wire(exc)
                if wire is None:
                    raise
                return error_response(*wire)

        return Route(path, endpoint, methods=methods)

    # ------------------------------------------------------------------------------------- handlers

    async def list_models(self, request: Request, reg: LocalRegistry) -> Response:
        models = await run_in_threadpool(reg.models, request.query_params.get("pattern") or None)
        return _json({"models": [m.to_dict() for m in models]})

    async def get_model(self, request: Request, reg: LocalRegistry) -> Response:
        return _json((await run_in_threadpool(reg.model, request.path_params["name"])).to_dict())

    async def model_history(self, request: Request, reg: LocalRegistry) -> Response:
        events = await run_in_threadpool(reg.history, request.path_params["name"], None)
        return _json({"events": [e.to_dict() for e in events]})

    async def list_versions(self, request: Request, reg: LocalRegistry) -> Response:
        versions = await run_in_threadpool(reg.versions, request.path_params["name"])
        return _json({"versions": [v.to_dict() for v in versions]})

    async def search(self, request: Request, reg: LocalRegistry) -> Response:
        q = request.query_params
        page = await run_in_threadpool(lambda: reg.search(
            name=q.get("name") or None, tags=_tags(q.getlist("tag")),
            max_results=_int(q.get("max_results", "100"), "max_results"), page_token=q.get("page_token") or None))
        return _json(page.to_dict())

    async def register(self, request: Request, reg: LocalRegistry) -> Response:
        name = request.path_params["name"]
        reg.actor.require("write", f"registering {name}")
        q = request.query_params
        options: dict[str, Any] = {"tags": _tags(q.getlist("tag")), "description": q.get("description", ""),
                                   "alias": q.get("alias") or None, "trusted": q.getlist("trust"),
                                   "parent": q.get("parent") or None}
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            if "content-length" not in request.headers:  # the form parser spools parts before we could count
                return error_response(411, "length_required", "a multipart upload needs a Content-Length; or "
                                                              "send the capsule itself as the body")
            staged = await self._stage_multipart(request, reg, options)
        else:
            staged = await self._stage_stream(request, reg)
        version = await run_in_threadpool(lambda: reg.register_staged(name, staged, **options))
        return _json(version.to_dict(), 201)

    async def _stage_stream(self, request: Request, reg: LocalRegistry) -> StagedBlob:
        tmp_dir = reg.tmp_dir()
        fd, path = tempfile.mkstemp(prefix="upload-", suffix=".capsule", dir=tmp_dir)
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > self.max_body:
                        raise _TooLarge(f"the upload passed this server's limit of {self.max_body:,} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            Path(path).unlink(missing_ok=True)
            raise
        if size == 0:
            Path(path).unlink(missing_ok=True)
            raise ValueError("the request has no body: send the capsule file as the body (or as multipart field "
                             "'capsule')")
        return StagedBlob(Path(path), f"sha256:{digest.hexdigest()}", size)

    async def _stage_multipart(self, request: Request, reg: LocalRegistry, options: dict[str, Any]) -> StagedBlob:
        async with request.form(max_files=1, max_fields=100) as form:
            upload = form.get("capsule") or form.get("file")
            if upload is None or isinstance(upload, str):
                raise ValueError("the multipart body needs the capsule file in a field named 'capsule'")
            for key in ("description", "alias", "parent"):
                value = form.get(key)
                if isinstance(value, str) and value:
                    options[key] = value
            options["tags"].update(_tags([v for v in form.getlist("tag") if isinstance(v, str)]))
            options["trusted"] = [*options["trusted"], *(v for v in form.getlist("trust") if isinstance(v, str))]
            await upload.seek(0)
            return await run_in_threadpool(reg.blobs.stage_stream, upload.file, max_bytes=self.max_body)

    async def get_version(self, request: Request, reg: LocalRegistry) -> Response:
        ref = f"{request.path_params['name']}/{request.path_params['version']}"
        return _json((await run_in_threadpool(reg.get, ref)).to_dict())

    async def get_capsule(self, request: Request, reg: LocalRegistry) -> Response:
        ref = f"{request.path_params['name']}/{request.path_params['version']}"
        version, path = await run_in_threadpool(reg.open_blob, ref)
        return FileResponse(path, media_type="application/octet-stream", filename=f"{version.name}-{version.version}"
                            ".capsule", headers={"X-Modelcapsule-Digest": version.digest})

    async def delete_version(self, request: Request, reg: LocalRegistry) -> Response:
        body = await _body(request)
        event = await run_in_threadpool(lambda: reg.delete(request.path_params["name"], _int(
            request.path_params["version"], "version"), reason=str(body.get("reason", ""))))
        return _json(event.to_dict())

    async def get_alias(self, request: Request, reg: LocalRegistry) -> Response:
        ref = f"{request.path_params['name']}@{request.path_params['alias']}"
        return _json((await run_in_threadpool(reg.get, ref)).to_dict())

    async def put_alias(self, request: Request, reg: LocalRegistry) -> Response:
        body = await _body(request)
        version = body.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError('the body must be {"version": N, "reason": "..."} with N an integer')
        p = request.path_params
        event = await run_in_threadpool(lambda: reg.set_alias(p["name"], p["alias"], version,
                                                              reason=str(body.get("reason", ""))))
        return _json(event.to_dict())

    async def delete_alias(self, request: Request, reg: LocalRegistry) -> Response:
        body, p = await _body(request), request.path_params
        event = await run_in_threadpool(lambda: reg.delete_alias(p["name"], p["alias"],
                                                                 reason=str(body.get("reason", ""))))
        return _json(event.to_dict())

    async def alias_history(self, request: Request, reg: LocalRegistry) -> Response:
        p = request.path_params
        events = await run_in_threadpool(reg.history, p["name"], p["alias"])
        return _json({"events": [e.to_dict() for e in events]})

    async def rollback(self, request: Request, reg: LocalRegistry) -> Response:
        body, p = await _body(request), request.path_params
        event = await run_in_threadpool(lambda: reg.rollback(p["name"], p["alias"], reason=str(body.get("reason", ""))))
        return _json(event.to_dict())

    async def protection(self, request: Request, reg: LocalRegistry) -> Response:
        body, p = await _body(request), request.path_params
        event = await run_in_threadpool(lambda: reg.protect(p["name"], p["alias"], protected=request.method == "PUT",
                                                            reason=str(body.get("reason", ""))))
        return _json(event.to_dict())

    async def put_tags(self, request: Request, reg: LocalRegistry) -> Response:
        body, p = await _body(request), request.path_params
        tags = body.get("tags")
        if not isinstance(tags, dict):
            raise ValueError('the body must be {"tags": {"key": "value", ...}}')
        version = _int(p["version"], "version") if "version" in p else None
        await run_in_threadpool(lambda: reg.set_tags(p["name"], {str(k): str(v) for k, v in tags.items()},
                                                     version=version))
        return Response(status_code=204)

    async def delete_tag(self, request: Request, reg: LocalRegistry) -> Response:
        p = request.path_params
        version = _int(p["version"], "version") if "version" in p else None
        await run_in_threadpool(lambda: reg.delete_tag(p["name"], p["key"], version=version))
        return Response(status_code=204)

    async def post_event(self, request: Request, reg: LocalRegistry) -> Response:
        body = await _body(request)
        allowed = {"alias", "from_version", "to_version", "reason"}
        kind = body.get("kind")
        if not isinstance(kind, str):
            raise ValueError('the body must name the event: {"kind": "serving_failed", ...}')
        options = {k: v for k, v in body.items() if k in allowed}
        event = await run_in_threadpool(lambda: reg.record_event(request.path_params["name"], kind, **options))
        return _json(event.to_dict(), 201)

    async def tokens(self, request: Request, reg: LocalRegistry) -> Response:
        if request.method == "GET":
            return _json({"tokens": [t.to_dict() for t in await run_in_threadpool(reg.tokens)]})
        body = await _body(request)
        secret = await run_in_threadpool(reg.create_token, str(body.get("name", "")), str(body.get("role", "")))
        return _json({"name": body["name"], "role": body["role"], "token": secret}, 201)

    async def revoke_token(self, request: Request, reg: LocalRegistry) -> Response:
        await run_in_threadpool(reg.revoke_token, request.path_params["token"])
        return Response(status_code=204)

    async def webhooks(self, request: Request, reg: LocalRegistry) -> Response:
        if request.method == "GET":
            return _json({"webhooks": [w.to_dict() for w in await run_in_threadpool(reg.webhooks)]})
        body = await _body(request)
        events = body.get("events") or None
        hook = await run_in_threadpool(reg.add_webhook, str(body.get("url", "")), str(body.get("secret", "")),
                                       [str(e) for e in events] if isinstance(events, list) else None)
        return _json(hook.to_dict(), 201)

    async def remove_webhook(self, request: Request, reg: LocalRegistry) -> Response:
        await run_in_threadpool(reg.remove_webhook, _int(request.path_params["hook"], "webhook id"))
        return Response(status_code=204)

    async def deliveries(self, request: Request, reg: LocalRegistry) -> Response:
        hook = request.query_params.get("webhook")
        found = await run_in_threadpool(reg.deliveries, _int(hook, "webhook") if hook else None,
                                        _int(request.query_params.get("limit", "100"), "limit"))
        return _json({"deliveries": [d.to_dict() for d in found]})


class _TooLarge(Exception):
    pass


def create_app(registry: LocalRegistry, *, public_read: bool = False, max_body: int = DEFAULT_MAX_BODY) -> Starlette:
    """The ASGI app of ``capsule registry serve`` over ``registry``."""
    app = _App(registry, public_read=public_read, max_body=max_body)
    m, a = "/api/v1/models/{name}", "/api/v1/models/{name}/aliases/{alias}"
    v = m + "/versions/{version}"

    async def document(request: Request) -> Response:
        return _json(openapi())

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(404, "not_found", f"no route {request.url.path}; see /api/v1/openapi.json")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return error_response(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}")

    routes = [
        Route("/api/v1/openapi.json", document, methods=["GET"]),
        app.route("/api/v1/models", app.list_models, ["GET"]),
        app.route("/api/v1/versions", app.search, ["GET"]),
        app.route(m, app.get_model, ["GET"]),
        app.route(m + "/history", app.model_history, ["GET"]),
        app.route(m + "/events", app.post_event, ["POST"]),
        app.route(m + "/tags", app.put_tags, ["PUT"]),
        app.route(m + "/tags/{key}", app.delete_tag, ["DELETE"]),
        app.route(m + "/versions", app.list_versions, ["GET"]),
        app.route(m + "/versions", app.register, ["POST"]),
        app.route(v, app.get_version, ["GET"]),
        app.route(v, app.delete_version, ["DELETE"]),
        app.route(v + "/capsule", app.get_capsule, ["GET"]),
        app.route(v + "/tags", app.put_tags, ["PUT"]),
        app.route(v + "/tags/{key}", app.delete_tag, ["DELETE"]),
        app.route(a, app.get_alias, ["GET"]),
        app.route(a, app.put_alias, ["PUT"]),
        app.route(a, app.delete_alias, ["DELETE"]),
        app.route(a + "/history", app.alias_history, ["GET"]),
        app.route(a + "/rollback", app.rollback, ["POST"]),
        app.route(a + "/protection", app.protection, ["PUT", "DELETE"]),
        app.route("/api/v1/tokens", app.tokens, ["GET", "POST"]),
        app.route("/api/v1/tokens/{token}", app.revoke_token, ["DELETE"]),
        app.route("/api/v1/webhooks", app.webhooks, ["GET", "POST"]),
        app.route("/api/v1/webhooks/deliveries", app.deliveries, ["GET"]),
        app.route("/api/v1/webhooks/{hook}", app.remove_webhook, ["DELETE"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
