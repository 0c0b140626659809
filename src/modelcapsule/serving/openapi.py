"""The OpenAPI 3.1 description of every route the server answers, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi"]

_OBJ: dict[str, Any] = {"type": "object"}


def _op(summary: str, body: bool = False, tag: str = "") -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [tag] if tag else [],
        "responses": {
            "200": {"description": "OK"},
            "400": {"description": "Bad request"},
            "404": {"description": "Unknown model or version"},
        },
    }
    if body:
        op["requestBody"] = {"content": {"application/json": {"schema": _OBJ}}}
    return op


_MODEL = {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "integer"}}

_ROUTES: list[tuple[str, str, str, bool, str]] = [
    ("/v2", "get", "Server metadata", False, "V2"),
    ("/v2/health/live", "get", "Liveness", False, "V2"),
    ("/v2/health/ready", "get", "Readiness", False, "V2"),
    ("/v2/models/{model}", "get", "Model metadata", False, "V2"),
    ("/v2/models/{model}/ready", "get", "Model readiness", False, "V2"),
    ("/v2/models/{model}/infer", "post", "Inference (JSON or binary tensors)", True, "V2"),
    ("/v2/models/{model}/versions/{version}", "get", "Model version metadata", False, "V2"),
    ("/v2/models/{model}/versions/{version}/infer", "post", "Inference on one version", True, "V2"),
    ("/v1/models/{model}", "get", "Model version status", False, "TF Serving"),
    ("/v1/models/{model}/metadata", "get", "Signature definitions", False, "TF Serving"),
    ("/v1/models/{model}:predict", "post", "Predict (instances or inputs)", True, "TF Serving"),
    ("/v1/models/{model}:classify", "post", "Classify examples", True, "TF Serving"),
    ("/v1/models/{model}:regress", "post", "Regress examples", True, "TF Serving"),
    ("/v1/models/{model}/versions/{version}:predict", "post", "Predict on one version", True, "TF Serving"),
    (
        "/v1/models/{model}/labels/{label}:predict",
        "post",
        "Predict on a labelled version",
        True,
        "TF Serving",
    ),
    ("/predict", "post", "Plain recipe {inputs} or Seldon {data}", True, "Plain / Seldon"),
    ("/api/v1.0/predictions", "post", "Seldon prediction", True, "Plain / Seldon"),
    ("/invocations", "post", "MLflow scoring (JSON or CSV)", True, "MLflow"),
    ("/ping", "get", "MLflow health", False, "MLflow"),
    ("/health", "get", "MLflow health", False, "MLflow"),
    ("/version", "get", "Server version", False, "MLflow"),
    ("/metrics", "get", "Prometheus metrics", False, "Operations"),
    ("/", "get", "Models page", False, "Operations"),
    ("/models.json", "get", "Models (the models page's JSON twin)", False, "Pages"),
    ("/models/{model}.json", "get", "A model's versions and aliases", False, "Pages"),
    ("/models/{model}/versions/{version}.json", "get", "A version's model card", False, "Pages"),
    ("/models/{model}/compare.json", "get", "Two versions side by side (?a=V&b=W)", False, "Pages"),
    ("/models/{model}/versions/{version}/predict", "post", "Try-it form: {rows: [[...]]}", True, "Pages"),
]


def openapi(version: str) -> dict[str, Any]:
    """The document (built per call; it is small)."""
    paths: dict[str, Any] = {}
    for path, method, summary, body, tag in _ROUTES:
        op = _op(summary, body, tag)
        params = [p for p in (_MODEL, _VERSION) if "{" + str(p["name"]) + "}" in path]
        if "{label}" in path:
            params.append({"name": "label", "in": "path", "required": True, "schema": {"type": "string"}})
        if params:
            op["parameters"] = params
        paths.setdefault(path, {})[method] = op
    return {"openapi": "3.1.0", "info": {"title": "modelcapsule serving", "version": version}, "paths": paths}
