"""The OpenAPI 3.1 description of the registry's REST API, served at ``/api/v1/openapi.json``.

It says exactly what :mod:`modelcapsule.registry.api` accepts and answers: each route's query, path and body
schemas as the handlers check them, the statuses each route can really give, and its security: a bearer token
everywhere, except that with ``public_read`` a read may also come without one. :data:`ROUTES` is the one list
of paths and methods both the server and this document are built from, so neither can list a method the
other lacks (a method not listed is a 405 whose ``Allow`` names the listed ones).
"""

from __future__ import annotations

from typing import Any

from .webhooks import EVENT_KINDS

__all__ = ["ADMIN_READS", "ROUTES", "WEBHOOK_URL_PATTERN", "openapi"]

M = "/api/v1/models/{name}"
V, A = M + "/versions/{version}", M + "/aliases/{alias}"

ROUTES: dict[str, tuple[str, ...]] = {
    "/api/v1/models": ("GET",), "/api/v1/versions": ("GET",),
    M: ("GET",), M + "/history": ("GET",), M + "/events": ("POST",), M + "/tags": ("PUT",),
    M + "/tags/{key}": ("DELETE",), M + "/versions": ("GET", "POST"), V: ("GET", "DELETE"),
    V + "/capsule": ("GET",), V + "/tags": ("PUT",), V + "/tags/{key}": ("DELETE",),
    A: ("GET", "PUT", "DELETE"), A + "/history": ("GET",), A + "/rollback": ("POST",),
    A + "/protection": ("PUT", "DELETE"), "/api/v1/tokens": ("GET", "POST"), "/api/v1/tokens/{name}": ("DELETE",),
    "/api/v1/webhooks": ("GET", "POST"), "/api/v1/webhooks/deliveries": ("GET",),
    "/api/v1/webhooks/{hook}": ("DELETE",),
}
"""Every API path and the methods it answers (HEAD too wherever GET is, as Starlette does)."""

ADMIN_READS = frozenset({"/api/v1/tokens", "/api/v1/webhooks", "/api/v1/webhooks/deliveries"})
"""Paths whose GET needs the admin role, so a public-read server still wants a token there."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$"
INT_MAX = 2**63 - 1
"""The largest number the databases store: larger ids and versions are refused (400), never looked up."""
_INT = {"type": "integer", "minimum": 1, "maximum": INT_MAX}
_EVENT_INT = {"type": ["integer", "null"], "minimum": -INT_MAX - 1, "maximum": INT_MAX}
ALIAS_PATTERN = r"^(?!latest$)(?![0-9]+$)" + NAME_PATTERN[1:]
"""An alias: a name that is not all digits (those are versions) nor ``latest``."""
_DIGITS = r"(?:M[DTjz]|N[DTjz]|O[DT])"
_TAIL = rf"(?:M[AQgw]|N[AQgw]|O[AQ]|{_DIGITS}[AEIMQUYcgk])"
PAGE_TOKEN_PATTERN = rf"^(?:djE6(?:(?:{_DIGITS}[AEIMQUYcgk][wxyz0-5])+{_TAIL}?|{_TAIL}))?$"
"""Exactly the tokens the registry hands out (unpadded URL-safe base64 of ``v1:<row id>``), or empty (page one)."""
PAGE_TOKEN_MAX = 28  # "v1:" and up to 18 digits
WEBHOOK_URL_PATTERN = r"^https?://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,4})?(/[A-Za-z0-9._~/%-]*)?(\?[A-Za-z0-9._~=&%-]*)?$"
"""The webhook URLs the API takes: http(s), a host name or IPv4 address, an optional port, path and query."""
TAG_PATTERN = r"^[^=]+=[\s\S]*$"
_WHY = {400: "The request is malformed (the message says what to fix)",
        401: "No token, an unknown or revoked one, or an Authorization header that is not 'Bearer TOKEN'",
        403: "The token's role is too weak for this action", 404: "No such model, version, alias or tag owner",
        409: "The action conflicts with the registry's state (an alias points to the version, the alias is "
             "protected, the name is taken...)",
        411: "A multipart upload came without Content-Length", 413: "The body is over the server's limit",
        422: "The upload is not a capsule this registry accepts (format, integrity, trust or verification)"}
_STR = {"type": "string"}


def _path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string", "minLength": 1}}


def _query(name: str, schema: dict[str, Any], repeat: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False,
            "schema": {"type": "array", "items": schema} if repeat else schema}


_NAME = _path("name", {"type": "string", "pattern": NAME_PATTERN})
_VERSION = _path("version", _INT)
_READ_VERSION = _path("version", {"anyOf": [_INT, {"const": "latest"}]})  # reads also take 'latest'
_ALIAS = _path("alias", {"type": "string", "pattern": ALIAS_PATTERN})
_TAG = {"type": "string", "pattern": TAG_PATTERN}
_REF = {"type": "string",  # name, name/N, name/latest or name@alias, perhaps behind models:/
        "pattern": rf"^(models:/)?{NAME_PATTERN[1:-1]}(/([1-9][0-9]*|latest)|@{NAME_PATTERN[1:-1]})?$"}
_TRUST = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"}  # module.qualname


def _json_body(properties: dict[str, Any], required: tuple[str, ...] = (), *, optional: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return {"required": not optional, "content": {"application/json": {"schema": schema}}}


_REASON = _json_body({"reason": _STR}, optional=True)


def _op(summary: str, role: str, params: list[dict[str, Any]], answer: str | None, statuses: tuple[int, ...], *,
        body: dict[str, Any] | None = None, ok: int = 200, public_read: bool = False) -> dict[str, Any]:
    good: dict[str, Any] = {"description": "done" if answer else "done; no body"}
    if answer == "binary":
        good = {"description": "the capsule file", "content": {"application/octet-stream": {
            "schema": {"type": "string", "format": "binary"}}}}
    elif answer:
        good["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{answer}"}}}
    errors = {400, 401, 413} if body else {400, 401} if params else {401}  # 400: a parameter off its schema
    errors |= set(statuses) | ({403} if role != "read" else set())
    responses: dict[str, Any] = {str(ok): good}
    for status in sorted(errors):
        responses[str(status)] = {"description": _WHY[status], "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"}}}}
    anonymous = public_read and role == "read"  # admin reads (tokens, webhooks) are never anonymous
    op: dict[str, Any] = {
        "summary": summary, "parameters": params, "responses": responses,
        "description": f"Needs the {role!r} role" + (" or no token at all (public reads)." if anonymous else "."),
        "security": [{}, {"bearer": []}] if anonymous else [{"bearer": []}]}
    if body is not None:
        op["requestBody"] = body
    return op


def openapi(*, public_read: bool = False) -> dict[str, Any]:
    """The document (built on request; small). ``public_read``: reads need no token."""
    def op(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return _op(*args, public_read=public_read, **kwargs)

    upload = {"required": True, "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {"type": "object", "required": ["capsule"], "properties": {
            "capsule": {"type": "string", "format": "binary"}, "description": _STR, "alias": _ALIAS["schema"],
            "parent": _REF,
            "tag": {"type": "array", "items": _TAG}, "trust": {"type": "array", "items": _TRUST}}}}}}
    register_query = [_query("tag", _TAG, repeat=True), _query("alias", _ALIAS["schema"]),
                      _query("description", _STR), _query("trust", _TRUST, repeat=True), _query("parent", _REF)]
    tags = _json_body({"tags": {"type": "object", "additionalProperties": {
        "type": ["string", "number", "boolean"], "maxLength": 1024},
                                "propertyNames": {"minLength": 1, "maxLength": 255}}}, ("tags",))
    event = _json_body({"kind": {"type": "string", "pattern": "^[a-z_]*[a-z][a-z_]*$", "maxLength": 32},
                        "alias": {"type": ["string", "null"]}, "from_version": _EVENT_INT, "to_version": _EVENT_INT,
                        "reason": _STR}, ("kind",))
    token = _json_body({"name": {"type": "string", "pattern": NAME_PATTERN},
                        "role": {"enum": ["read", "write", "admin"]}}, ("name", "role"))
    hook = _json_body({"url": {"type": "string", "pattern": WEBHOOK_URL_PATTERN, "maxLength": 2048},
                       "secret": {"type": "string", "minLength": 1},
                       "events": {"type": ["array", "null"], "items": {"enum": list(EVENT_KINDS)}}},
                      ("url", "secret"))
    key = _path("key", {"type": "string", "minLength": 1, "maxLength": 255})
    nv, na, rv = [_NAME, _VERSION], [_NAME, _ALIAS], [_NAME, _READ_VERSION]
    paths: dict[str, dict[str, Any]] = {
        "/api/v1/models": {"get": op("List models", "read", [_query("pattern", _STR)], "ModelList", ())},
        "/api/v1/versions": {"get": op("Search versions, newest first", "read", [
            _query("name", _STR), _query("tag", _TAG, repeat=True),
            _query("max_results", {"type": "integer", "minimum": 1, "maximum": 10_000}),
            _query("page_token", {"type": "string", "pattern": PAGE_TOKEN_PATTERN, "maxLength": PAGE_TOKEN_MAX,
                                  "description": "the next_page_token of the previous page"})],
            "SearchPage", (400,))},
        M: {"get": op("Get a model", "read", [_NAME], "Model", (404,))},
        M + "/history": {"get": op("Every event of a model", "read", [_NAME], "Events", (404,))},
        M + "/events": {"post": op("Record an event (a serving failure, say)", "write", [_NAME], "Event", (400, 404),
                                   body=event, ok=201)},
        M + "/tags": {"put": op("Set model tags", "write", [_NAME], None, (400, 404), body=tags, ok=204)},
        M + "/tags/{key}": {"delete": op("Delete a model tag", "write", [_NAME, key], None, (404,), ok=204)},
        M + "/versions": {
            "get": op("List versions", "read", [_NAME], "VersionList", (404,)),
            "post": op("Register a capsule (the body, or multipart field 'capsule')", "write",
                       [_NAME, *register_query], "ModelVersion", (400, 404, 409, 411, 422), body=upload, ok=201)},
        V: {"get": op("Get a version (or the latest)", "read", rv, "ModelVersion", (404,)),
            "delete": op("Delete a version (refused while an alias points to it)", "admin", nv, "Event",
                         (400, 404, 409), body=_REASON)},
        V + "/capsule": {"get": op("Download the capsule", "read", rv, "binary", (404,))},
        V + "/tags": {"put": op("Set version tags", "write", nv, None, (400, 404), body=tags, ok=204)},
        V + "/tags/{key}": {"delete": op("Delete a version tag", "write", [*nv, key], None, (404,), ok=204)},
        A: {"get": op("The version an alias points to", "read", na, "ModelVersion", (400, 404)),
            "put": op("Move an alias (admin when protected)", "write", na, "Event", (400, 404, 409), body=_json_body(
                {"version": _INT, "reason": _STR}, ("version",))),
            "delete": op("Delete an alias (admin when protected)", "write", na, "Event", (400, 404, 409),
                         body=_REASON)},
        A + "/history": {"get": op("An alias's history", "read", na, "Events", (400, 404))},
        A + "/rollback": {"post": op("Move an alias back to its previous target", "write", na, "Event",
                                     (400, 404, 409), body=_REASON)},
        A + "/protection": {"put": op("Protect an alias", "admin", na, "Event", (400, 404, 409), body=_REASON),
                            "delete": op("Unprotect an alias", "admin", na, "Event", (400, 404, 409), body=_REASON)},
        "/api/v1/tokens": {"get": op("List tokens", "admin", [], "Tokens", ()),
                           "post": op("Create a token; its secret is in this answer only", "admin", [], "NewToken",
                                      (400, 409), body=token, ok=201)},
        "/api/v1/tokens/{name}": {"delete": op("Revoke a token (by its name)", "admin", [_path("name")], None, (404,),
                                                ok=204)},
        "/api/v1/webhooks": {"get": op("List webhooks", "admin", [], "Webhooks", ()),
                             "post": op("Add a webhook", "admin", [], "Webhook", (400,), body=hook, ok=201)},
        "/api/v1/webhooks/deliveries": {"get": op("Recent deliveries", "admin", [
            _query("webhook", _INT), _query("limit", _INT)], "Deliveries", (400,))},
        "/api/v1/webhooks/{hook}": {"delete": op("Remove a webhook", "admin", [_path("hook", _INT)], None, (400, 404),
                                                 ok=204)},
    }
    obj = {"type": "object"}

    def listing(key: str) -> dict[str, Any]:
        return {"type": "object", "required": [key], "properties": {key: {"type": "array", "items": obj}}}

    schemas = {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": _STR, "message": _STR}}}},
        "Model": obj, "ModelVersion": obj, "Event": obj, "Webhook": obj,
        "ModelList": listing("models"), "VersionList": listing("versions"), "Events": listing("events"),
        "Tokens": listing("tokens"), "Webhooks": listing("webhooks"), "Deliveries": listing("deliveries"),
        "NewToken": {"type": "object", "required": ["name", "role", "token"],
                     "properties": {"name": _STR, "role": _STR, "token": _STR}},
        "SearchPage": {"type": "object", "properties": {"versions": {"type": "array", "items": obj},
                                                        "next_page_token": {"type": ["string", "null"]}}},
    }
    return {"openapi": "3.1.0", "info": {"title": "modelcapsule registry", "version": "1"}, "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}
