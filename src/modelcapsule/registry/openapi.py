"""The OpenAPI 3.1 description of the registry's REST API, served at ``/api/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi"]

_ERROR = {"description": "an error",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_ALIAS = {"name": "alias", "in": "path", "required": True, "schema": {"type": "string"}}
_REASON = {"required": False, "content": {"application/json": {"schema": {
    "type": "object", "properties": {"reason": {"type": "string"}}}}}}


def _op(summary: str, role: str, params: list[dict[str, Any]], schema: str | None = None, *,
        body: dict[str, Any] | None = None, status: str = "200", query: list[dict[str, Any]] | None = None) -> dict[
        str, Any]:
    ok: dict[str, Any] = {"description": "ok"}
    if schema:
        ok["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    op: dict[str, Any] = {"summary": summary, "description": f"Needs the {role!r} role.",
                          "parameters": [*params, *(query or [])],
                          "responses": {status: ok, "400": _ERROR, "401": _ERROR, "403": _ERROR, "404": _ERROR}}
    if body is not None:
        op["requestBody"] = body
    return op


def _query(name: str, kind: str = "string", repeat: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": kind}
    return {"name": name, "in": "query", "required": False,
            "schema": {"type": "array", "items": schema} if repeat else schema}


def openapi() -> dict[str, Any]:
    """The document (built on request; small)."""
    m = "/api/v1/models/{name}"
    v, a = m + "/versions/{version}", m + "/aliases/{alias}"
    upload = {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                     "format": "binary"}},
                                            "multipart/form-data": {"schema": {"type": "object", "properties": {
                                                "capsule": {"type": "string", "format": "binary"}}}}}}
    put_alias = {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["version"],
        "properties": {"version": {"type": "integer"}, "reason": {"type": "string"}}}}}}
    paths = {
        "/api/v1/models": {"get": _op("List models", "read", [], "ModelList", query=[_query("pattern")])},
        "/api/v1/versions": {"get": _op("Search versions, newest first", "read", [], "SearchPage", query=[
            _query("name"), _query("tag", repeat=True), _query("max_results", "integer"), _query("page_token")])},
        m: {"get": _op("Get a model", "read", [_NAME], "Model")},
        m + "/history": {"get": _op("Every event of a model", "read", [_NAME], "Events")},
        m + "/versions": {
            "get": _op("List versions", "read", [_NAME], "VersionList"),
            "post": _op("Register a capsule (the body, or multipart field 'capsule')", "write", [_NAME],
                        "ModelVersion", body=upload, status="201",
                        query=[_query("tag", repeat=True), _query("alias"), _query("description"),
                               _query("trust", repeat=True), _query("parent")])},
        v: {"get": _op("Get a version", "read", [_NAME, _VERSION], "ModelVersion"),
            "delete": _op("Delete a version (refused while an alias points to it)", "admin", [_NAME, _VERSION],
                          "Event", body=_REASON)},
        v + "/capsule": {"get": {"summary": "Download the capsule", "parameters": [_NAME, _VERSION], "responses": {
            "200": {"description": "the capsule file", "content": {"application/octet-stream": {}}}, "404": _ERROR}}},
        a: {"get": _op("The version an alias points to", "read", [_NAME, _ALIAS], "ModelVersion"),
            "put": _op("Move an alias", "write (admin when protected)", [_NAME, _ALIAS], "Event", body=put_alias),
            "delete": _op("Delete an alias", "write (admin when protected)", [_NAME, _ALIAS], "Event", body=_REASON)},
        a + "/history": {"get": _op("An alias's history", "read", [_NAME, _ALIAS], "Events")},
        a + "/rollback": {"post": _op("Move an alias back to its previous target", "write", [_NAME, _ALIAS], "Event",
                                      body=_REASON)},
        a + "/protection": {"put": _op("Protect an alias", "admin", [_NAME, _ALIAS], "Event", body=_REASON),
                            "delete": _op("Unprotect an alias", "admin", [_NAME, _ALIAS], "Event", body=_REASON)},
    }
    obj = {"type": "object"}
    schemas = {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
        "Model": obj, "ModelVersion": obj, "Event": obj,
        "ModelList": {"type": "object", "properties": {"models": {"type": "array", "items": obj}}},
        "VersionList": {"type": "object", "properties": {"versions": {"type": "array", "items": obj}}},
        "Events": {"type": "object", "properties": {"events": {"type": "array", "items": obj}}},
        "SearchPage": {"type": "object", "properties": {"versions": {"type": "array", "items": obj},
                                                        "next_page_token": {"type": ["string", "null"]}}},
    }
    return {"openapi": "3.1.0", "info": {"title": "modelcapsule registry", "version": "1"}, "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}]}
