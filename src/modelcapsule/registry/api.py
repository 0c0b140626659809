"""The registry's REST API (DESIGN §8) on Starlette: ``create_app(registry)`` serves a
:class:`~modelcapsule.registry.local.LocalRegistry` to ``mc.Registry("http://…")`` clients and to anyone with
``curl``. JSON in and out; errors are ``{"error": {"code", "message"}}``; uploads are streamed to the blob
directory as they arrive, never held whole in memory; every request but the OpenAPI document needs a
bearer token (reads too, unless the server runs with ``public_read``; listing tokens and webhooks always). The
token's name is the actor recorded in every event it causes.

The paths and methods come from :data:`~modelcapsule.registry.openapi.ROUTES`, the list the OpenAPI document is
built from, one Starlette route per path: a method a path does not answer is a 405 whose ``Allow`` names those
it does. Bodies and parameters are checked exactly as that document describes them (unknown fields, wrong
types, out-of-range numbers are 400s), so the document is the API's contract, which schemathesis checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from .actors import Actor
from .blobs import StagedBlob, TooLargeError
from .errors import AuthenticationError, RegistryError, to_wire
from .local import LocalRegistry
from .openapi import ADMIN_READS, INT_MAX, PAGE_TOKEN_MAX, ROUTES, WEBHOOK_URL_PATTERN, openapi

__all__ = ["DEFAULT_MAX_BODY", "create_app"]

DEFAULT_MAX_BODY = 2 << 30
Handler = Callable[[Request, LocalRegistry], Awaitable[Response]]


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


async def _body(request: Request, fields: dict[str, type | tuple[type, ...]], required: tuple[str, ...] = (),
                example: str = '{"reason": "..."}') -> dict[str, Any]:
    """The JSON object body, checked as the OpenAPI document describes it: only ``fields``, each of its type,
    ``required`` ones present (an empty body is ``{}``)."""
    raw = await request.body()
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        raise ValueError(f"the request body is not valid JSON; send {example}") from None
    if not isinstance(data, dict):
        raise ValueError(f"the request body must be a JSON object like {example}")
    unknown = sorted(set(data) - set(fields))
    missing = [key for key in required if key not in data]
    if unknown or missing:
        what = f"unknown field(s) {', '.join(unknown)}" if unknown else f"missing field(s) {', '.join(missing)}"
        raise ValueError(f"the request body has {what}; send {example}")
    for key, value in data.items():
        kind = fields[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if int in kinds and isinstance(value, float) and value.is_integer():  # JSON Schema's 2.0 is the integer 2
            data[key] = int(value)
        elif (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            raise ValueError(f"field {key!r} has the wrong type; send {example}")
        if isinstance(data[key], int) and not -INT_MAX - 1 <= data[key] <= INT_MAX:
            raise ValueError(f"field {key!r} is outside the 64-bit range the registry stores")
    return data


_REASON: dict[str, type | tuple[type, ...]] = {"reason": str}


def _int(value: str, what: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= INT_MAX:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    return int(value)


def _version_or_latest(value: str) -> str:
    """A version number, or ``latest`` (reads only): what the read routes take in place of a number."""
    return value if value == "latest" else str(_int(value, "version"))


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

    def actor(self, request: Request, public: bool = True) -> Actor:
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        if header and (scheme.lower() != "bearer" or not secret.strip()):
            raise AuthenticationError("the Authorization header must be 'Bearer TOKEN'")
        if secret.strip():
            actor = self.registry.authenticate(secret.strip())
            if actor is None:
                raise AuthenticationError("this token is unknown or revoked; ask an admin for a new one")
            return actor
        if self.public_read and public and request.method in ("GET", "HEAD"):
            return Actor("anonymous", "read")
        raise AuthenticationError("this registry needs a token: send 'Authorization: Bearer TOKEN' (tokens come from "
                                  "`capsule registry token create NAME --role read|write|admin`)")

    def route(self, path: str, handlers: dict[str, Handler]) -> Route:
        """One route per path, answering each of its methods (HEAD with GET); any other method gets the 405 whose
        ``Allow`` Starlette derives from this route's whole list."""
        handlers = {**handlers, "HEAD": handlers["GET"]} if "GET" in handlers else handlers
        public = path not in ADMIN_READS  # listing tokens or webhooks is never a public read

        async def endpoint(request: Request) -> Response:
            handler = handlers[request.method]
            try:
                declared = int(request.headers.get("content-length") or 0)
                if declared > self.max_body:
                    return error_response(413, "too_large", f"the body is {declared:,} bytes, over this server's "
                                                            f"limit of {self.max_body:,}")
                registry = self.registry.as_actor(self.actor(request, public))
                return await handler(request, registry)
            except TooLargeError as exc:
                return error_response(413, "too_large", str(exc))
            except _NotFound as exc:
                return error_response(404, RegistryError.code, str(exc))
            except Exception as exc:
                wire = to_wire(exc)
                if wire is None:
                    raise
                return error_response(*wire)

        # a webhook id is digits, so DELETE /webhooks/deliveries is the 405 of that route, not "no webhook"
        return Route(path.replace("{hook}", "{hook:int}"), endpoint, methods=list(handlers))

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
        if len(q.get("page_token") or "") > PAGE_TOKEN_MAX:
            raise ValueError("this page_token is not one this registry handed out; pass the next_page_token of the "
                             "previous page, or none for the first page")
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
        with reg.blobs.sink(max_bytes=self.max_body, prefix="upload-") as sink:
            async for chunk in request.stream():
                sink.write(chunk)
            if sink.size == 0:
                raise ValueError("the request has no body: send the capsule file as the body (or as multipart "
                                 "field 'capsule')")
            return sink.finish()

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
        ref = f"{request.path_params['name']}/{_version_or_latest(request.path_params['version'])}"
        return _json((await run_in_threadpool(reg.get, ref)).to_dict())

    async def get_capsule(self, request: Request, reg: LocalRegistry) -> Response:
        ref = f"{request.path_params['name']}/{_version_or_latest(request.path_params['version'])}"
        version, path = await run_in_threadpool(reg.open_blob, ref)
        return FileResponse(path, media_type="application/octet-stream", filename=f"{version.name}-{version.version}"
                            ".capsule", headers={"X-Modelcapsule-Digest": version.digest})

    async def delete_version(self, request: Request, reg: LocalRegistry) -> Response:
        body = await _body(request, _REASON)
        event = await run_in_threadpool(lambda: reg.delete(request.path_params["name"], _int(
            request.path_params["version"], "version"), reason=str(body.get("reason", ""))))
        return _json(event.to_dict())

    async def get_alias(self, request: Request, reg: LocalRegistry) -> Response:
        ref = f"{request.path_params['name']}@{request.path_params['alias']}"
        return _json((await run_in_threadpool(reg.get, ref)).to_dict())

    async def put_alias(self, request: Request, reg: LocalRegistry) -> Response:
        example = '{"version": N, "reason": "..."} with N a version number (1 or more)'
        body = await _body(request, {"version": int, "reason": str}, ("version",), example)
        version = body["version"]
        if not 1 <= version <= INT_MAX:
            raise ValueError(f"the body must be {example}")
        p = request.path_params
        event = await run_in_threadpool(lambda: reg.set_alias(p["name"], p["alias"], version,
                                                              reason=str(body.get("reason", ""))))
        return _json(event.to_dict())

    async def delete_alias(self, request: Request, reg: LocalRegistry) -> Response:
        body, p = await _body(request, _REASON), request.path_params
        event = await run_in_threadpool(lambda: reg.delete_alias(p["name"], p["alias"],
                                                                 reason=str(body.get("reason", ""))))
        return _json(event.to_dict())

    async def alias_history(self, request: Request, reg: LocalRegistry) -> Response:
        p = request.path_params
        events = await run_in_threadpool(reg.history, p["name"], p["alias"])
        return _json({"events": [e.to_dict() for e in events]})

    async def rollback(self, request: Request, reg: LocalRegistry) -> Response:
        body, p = await _body(request, _REASON), request.path_params
        event = await run_in_threadpool(lambda: reg.rollback(p["name"], p["alias"], reason=str(body.get("reason", ""))))
        return _json(event.to_dict())

    async def protection(self, request: Request, reg: LocalRegistry) -> Response:
        body, p = await _body(request, _REASON), request.path_params
        event = await run_in_threadpool(lambda: reg.protect(p["name"], p["alias"], protected=request.method == "PUT",
                                                            reason=str(body.get("reason", ""))))
        return _json(event.to_dict())

    async def put_tags(self, request: Request, reg: LocalRegistry) -> Response:
        example = '{"tags": {"key": "value", ...}}'
        body, p = await _body(request, {"tags": dict}, ("tags",), example), request.path_params
        tags = body["tags"]
        if not all(isinstance(value, str | int | float) for value in tags.values()):  # numbers are kept as text
            raise ValueError(f"tag values must be strings (or numbers, kept as text): send {example}")
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
        maybe_int = (int, type(None))
        body = await _body(request, {"kind": str, "alias": (str, type(None)), "from_version": maybe_int,
                                     "to_version": maybe_int, "reason": str}, ("kind",),
                           '{"kind": "serving_failed", ...}')
        kind = body["kind"]
        options = {k: v for k, v in body.items() if k != "kind"}
        event = await run_in_threadpool(lambda: reg.record_event(request.path_params["name"], kind, **options))
        return _json(event.to_dict(), 201)

    async def tokens(self, request: Request, reg: LocalRegistry) -> Response:
        if request.method == "GET":
            return _json({"tokens": [t.to_dict() for t in await run_in_threadpool(reg.tokens)]})
        body = await _body(request, {"name": str, "role": str}, ("name", "role"), '{"name": "ci", "role": "write"}')
        secret = await run_in_threadpool(reg.create_token, body["name"], body["role"])
        return _json({"name": body["name"], "role": body["role"], "token": secret}, 201)

    async def revoke_token(self, request: Request, reg: LocalRegistry) -> Response:
        await _unknown_is_404(run_in_threadpool(reg.revoke_token, request.path_params["name"]))
        return Response(status_code=204)

    async def webhooks(self, request: Request, reg: LocalRegistry) -> Response:
        if request.method == "GET":
            return _json({"webhooks": [w.to_dict() for w in await run_in_threadpool(reg.webhooks)]})
        body = await _body(request, {"url": str, "secret": str, "events": (list, type(None))}, ("url", "secret"),
                           '{"url": "https://...", "secret": "...", "events": ["alias_set", ...]}')
        if len(body["url"]) > 2048 or not re.match(WEBHOOK_URL_PATTERN, body["url"]):
            raise ValueError(f"webhook URL {body['url']!r} must be http(s)://HOST[:PORT][/PATH][?QUERY] (at most 2048 "
                             "characters; host names, not IPv6 literals)")
        events = body.get("events")
        if events is not None and not all(isinstance(e, str) for e in events):
            raise ValueError("'events' must be a list of event kinds")
        hook = await run_in_threadpool(reg.add_webhook, body["url"], body["secret"], events or None)
        return _json(hook.to_dict(), 201)

    async def remove_webhook(self, request: Request, reg: LocalRegistry) -> Response:
        hook = _int(str(request.path_params["hook"]), "webhook id")
        await _unknown_is_404(run_in_threadpool(reg.remove_webhook, hook))
        return Response(status_code=204)

    async def deliveries(self, request: Request, reg: LocalRegistry) -> Response:
        hook = request.query_params.get("webhook")
        found = await run_in_threadpool(reg.deliveries, _int(hook, "webhook") if hook else None,
                                        _int(request.query_params.get("limit", "100"), "limit"))
        return _json({"deliveries": [d.to_dict() for d in found]})


class _NotFound(Exception):
    """No such token or webhook: a 404 keeping the registry's own error code, so clients raise what they did."""


async def _unknown_is_404(action: Awaitable[None]) -> None:
    try:
        await action
    except RegistryError as exc:
        if type(exc) is not RegistryError:
            raise
        raise _NotFound(str(exc)) from None


def create_app(registry: LocalRegistry, *, public_read: bool = False, max_body: int = DEFAULT_MAX_BODY) -> Starlette:
    """The ASGI app of ``capsule registry serve`` over ``registry``."""
    app = _App(registry, public_read=public_read, max_body=max_body)
    m, a = "/api/v1/models/{name}", "/api/v1/models/{name}/aliases/{alias}"
    v = m + "/versions/{version}"

    async def document(request: Request) -> Response:
        return _json(openapi(public_read=public_read))

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(404, "not_found", f"no route {request.url.path}; see /api/v1/openapi.json")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        allow = getattr(exc, "headers", None) or {}
        answer = error_response(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}"
                                + (f"; use {allow['Allow']}" if "Allow" in allow else ""))
        answer.headers.update(allow)
        return answer

    dispatch: dict[tuple[str, str], Handler] = {
        ("/api/v1/models", "GET"): app.list_models, ("/api/v1/versions", "GET"): app.search,
        (m, "GET"): app.get_model, (m + "/history", "GET"): app.model_history, (m + "/events", "POST"): app.post_event,
        (m + "/tags", "PUT"): app.put_tags, (m + "/tags/{key}", "DELETE"): app.delete_tag,
        (m + "/versions", "GET"): app.list_versions, (m + "/versions", "POST"): app.register,
        (v, "GET"): app.get_version, (v, "DELETE"): app.delete_version, (v + "/capsule", "GET"): app.get_capsule,
        (v + "/tags", "PUT"): app.put_tags, (v + "/tags/{key}", "DELETE"): app.delete_tag,
        (a, "GET"): app.get_alias, (a, "PUT"): app.put_alias, (a, "DELETE"): app.delete_alias,
        (a + "/history", "GET"): app.alias_history, (a + "/rollback", "POST"): app.rollback,
        (a + "/protection", "PUT"): app.protection, (a + "/protection", "DELETE"): app.protection,
        ("/api/v1/tokens", "GET"): app.tokens, ("/api/v1/tokens", "POST"): app.tokens,
        ("/api/v1/tokens/{name}", "DELETE"): app.revoke_token,
        ("/api/v1/webhooks", "GET"): app.webhooks, ("/api/v1/webhooks", "POST"): app.webhooks,
        ("/api/v1/webhooks/deliveries", "GET"): app.deliveries,
        ("/api/v1/webhooks/{hook}", "DELETE"): app.remove_webhook,
    }
    routes = [Route("/api/v1/openapi.json", document, methods=["GET"])]
    routes += [app.route(path, {method: dispatch[path, method] for method in methods})
               for path, methods in ROUTES.items()]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
