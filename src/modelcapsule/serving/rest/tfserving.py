"""TF Serving's REST API v1: model status, metadata, ``:predict``, ``:classify`` and ``:regress``.

Shapes follow TensorFlow Serving's "RESTful API" documentation: status answers
``{"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {...}}]}``; predict takes
the row format (``instances`` → ``predictions``) or the columnar one (``inputs`` → ``outputs``), named
inputs as objects; errors are ``{"error": "..."}``.

Signatures: ``serving_default`` gives the model's primary output (``predict``); every other output is a
signature of its own, named after its method (``"signature_name": "predict_proba"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from ...types import TensorSpec
from .. import schemas
from ..dataplane import DataPlane
from ..dtypes import numpy_to_tf
from ..errors import InvalidRequestError, ModelNotFoundError, Status, UnsupportedMethodError
from ..models import LoadedVersion, State
from ..openapi import ApiRoute
from ..transport import Decoded
from .common import Call, RestProtocol, endpoint, json_response, read_json, to_list

__all__ = ["PROTOCOLS", "routes"]

DEFAULT_SIGNATURE = "serving_default"
_TAG = "TF Serving"
_PREFIXES = (
    ("/v1/models/{model}", ""),
    ("/v1/models/{model}/versions/{version}", " (one version)"),
    ("/v1/models/{model}/labels/{label}", " (a labelled version)"),
)
_POSTS = ((":predict", "Predict (instances or inputs)"), (":classify", "Classify examples"),
          (":regress", "Regress examples"))
ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_STATUS = {
    "type": "object",
    "properties": {"model_version_status": {"type": "array", "items": {
        "type": "object",
        "properties": {"version": {"type": "string"}, "state": {"enum": [s.value for s in State]},
                       "status": {"type": "object", "properties": {"error_code": {"type": "string"},
                                                                   "error_message": {"type": "string"}}}},
        "required": ["version", "state", "status"]}}},
    "required": ["model_version_status"],
}
_METADATA = {
    "type": "object",
    "properties": {"model_spec": {"type": "object"}, "metadata": {"type": "object"}},
    "required": ["model_spec", "metadata"],
}


def _predict_schema(loaded: LoadedVersion) -> dict[str, Any]:
    """``:predict`` in the row format, for ``loaded``'s inputs (``inputs``, the columnar one, is also taken)."""
    sig = loaded.signature
    outputs = list(sig.outputs) if sig else []
    body: dict[str, Any] = {"type": "object", "required": ["instances"], "not": {"required": ["inputs"]}}
    if sig is None:
        return body
    spec = schemas.single_input(loaded)
    if spec is None:
        instances: dict[str, Any] = {"type": "array", "minItems": 1, "items": {
            "type": "object", "properties": {s.name: schemas.row(s) for s in sig.inputs},
            "required": [s.name for s in sig.inputs], "additionalProperties": False}}
    elif spec.columns is not None:
        instances = schemas.records(spec)
    else:
        instances = schemas.batch(spec)
    body["properties"] = {
        "instances": instances,
        "signature_name": {"enum": [None, "", DEFAULT_SIGNATURE, *[o.name for o in outputs]]},
    }
    return body


def _predict_answer(loaded: LoadedVersion) -> dict[str, Any]:
    sig = loaded.signature
    values = [schemas.output_values(loaded, o.name) for o in sig.outputs] if sig and sig.outputs else [{}]
    return {"type": "object", "properties": {"predictions": {"anyOf": values}}, "required": ["predictions"]}


def _width(loaded: LoadedVersion) -> int:
    """The number of features of an example (-1: the model cannot take examples)."""
    spec = schemas.single_input(loaded)
    if spec is None:
        return -1
    if spec.columns is not None:
        return len(spec.columns)
    return spec.shape[1] if len(spec.shape) == 2 and spec.shape[1] > 0 else -1


def _examples_schema(loaded: LoadedVersion) -> dict[str, Any]:
    spec = schemas.single_input(loaded)
    assert spec is not None
    if spec.columns is not None:
        example = schemas.record_schema(spec)
    else:
        width = _width(loaded)
        example = {"type": "object", "additionalProperties": schemas.element(spec.dtype),
                   "minProperties": width, "maxProperties": width}
    return {"type": "object", "properties": {"examples": {"type": "array", "items": example, "minItems": 1}},
            "required": ["examples"]}


def _can_classify(loaded: LoadedVersion) -> bool:
    return _width(loaded) > 0 and "predict_proba" in loaded.validator.output_names and bool(loaded.classes)


def _can_regress(loaded: LoadedVersion) -> bool:
    return _width(loaded) > 0 and not loaded.classes and bool(loaded.validator.output_names)


_CLASSIFY_ANSWER = {"type": "object", "required": ["result"], "properties": {"result": {
    "type": "array", "items": {"type": "array", "items": {
        "type": "array", "minItems": 2, "maxItems": 2, "items": {"type": ["string", "number", "null"]}}}}}}
_REGRESS_ANSWER = {"type": "object", "required": ["result"], "properties": {"result": {
    "type": "array", "items": {"type": ["number", "null"]}}}}
_DOCS: dict[str, tuple[Any, Any, Any]] = {
    ":predict": (_predict_schema, _predict_answer, None),
    ":classify": (_examples_schema, _CLASSIFY_ANSWER, _can_classify),
    ":regress": (_examples_schema, _REGRESS_ANSWER, _can_regress),
}


def _error(message: str, status: Status) -> Response:
    return json_response({"error": message}, status.http_status)


def _tensor_info(spec: TensorSpec) -> dict[str, Any]:
    return {
        "dtype": numpy_to_tf(spec.dtype),
        "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in spec.shape], "unknown_rank": False},
        "name": spec.name,
    }


def signature_def(loaded: LoadedVersion) -> dict[str, Any]:
    """TF Serving's ``signature_def`` map for a model: ``serving_default`` plus one per output."""
    sig = loaded.signature
    if sig is None:
        return {}
    inputs = {s.name: _tensor_info(s) for s in sig.inputs}
    defs: dict[str, Any] = {}
    for name, outs in [(DEFAULT_SIGNATURE, sig.outputs[:1]), *[(o.name, (o,)) for o in sig.outputs]]:
        defs[name] = {
            "inputs": inputs,
            "outputs": {o.name: _tensor_info(o) for o in outs},
            "method_name": "tensorflow/serving/predict",
        }
    return defs


def _output_for(loaded: LoadedVersion, signature_name: Any) -> tuple[str, ...]:
    names = loaded.validator.output_names
    if signature_name in (None, "", DEFAULT_SIGNATURE):
        return names[:1]
    if signature_name not in names:
        raise InvalidRequestError(
            f"signature_name {signature_name!r} is not served; use {[DEFAULT_SIGNATURE, *names]}."
        )
    return (str(signature_name),)


def _rows_to_inputs(loaded: LoadedVersion, instances: Any) -> dict[str, Any]:
    """The row format's ``instances`` as named tensors."""
    if not isinstance(instances, list) or not instances:
        raise InvalidRequestError("'instances' must be a non-empty list with one entry per row.")
    names = loaded.validator.input_names
    single = loaded.validator.single_input
    if isinstance(instances[0], dict):
        if single is not None and single.columns is not None and names[0] not in instances[0]:
            return {names[0]: _records(instances, single.columns, "instances")}
        for i, row in enumerate(instances):
            if not isinstance(row, dict) or set(row) != set(names):
                got = sorted(row) if isinstance(row, dict) else type(row).__name__
                raise InvalidRequestError(f"instances[{i}] must be an object with the inputs {list(names)}; got {got}.")
        return {n: [row[n] for row in instances] for n in names}
    if single is None:
        raise InvalidRequestError(
            f"this model takes several inputs {list(names)}: send each instance as an object naming them."
        )
    return {names[0]: instances}


def _records(rows: list[Any], columns: tuple[str, ...], field: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {c: [] for c in columns}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidRequestError(f"{field}[{i}] must be an object of column values.")
        missing = [c for c in columns if c not in row]
        if missing:
            raise InvalidRequestError(f"{field}[{i}] is missing column(s) {missing}; expected {list(columns)}.")
        for c in columns:
            out[c].append(row[c])
    return out


def _columnar_to_inputs(loaded: LoadedVersion, inputs: Any) -> dict[str, Any]:
    names = loaded.validator.input_names
    single = loaded.validator.single_input
    if isinstance(inputs, dict):
        if single is not None and names[0] not in inputs and single.columns is not None:
            return {names[0]: inputs}  # one list per column
        return inputs
    if single is None:
        raise InvalidRequestError(f"this model takes several inputs {list(names)}: send 'inputs' as an object.")
    return {names[0]: inputs}


def _examples(loaded: LoadedVersion, doc: dict[str, Any]) -> dict[str, Any]:
    """``examples`` (feature name → value, plus the shared ``context``) as the model's single input."""
    examples = doc.get("examples")
    context = doc.get("context") or {}
    if not isinstance(examples, list) or not examples or not isinstance(context, dict):
        raise InvalidRequestError("'examples' must be a non-empty list of objects (feature name → value).")
    single = loaded.validator.single_input
    if single is None:
        raise UnsupportedMethodError("classify/regress need a model with a single input; use :predict.")
    rows: list[dict[str, Any]] = []
    for i, ex in enumerate(examples):
        if not isinstance(ex, dict):
            raise InvalidRequestError(f"examples[{i}] must be an object of feature values.")
        rows.append({**context, **ex})
    if single.columns is not None:
        return {single.spec.name: _records(rows, single.columns, "examples")}
    width = single.spec.shape[1] if len(single.spec.shape) == 2 else -1
    values = []
    for i, row in enumerate(rows):
        if width >= 0 and len(row) != width:
            raise InvalidRequestError(f"examples[{i}] has {len(row)} feature(s); this model takes {width}.")
        values.append(list(row.values()))
    return {single.spec.name: values}


def _predict_request(loaded: LoadedVersion, doc: dict[str, Any]) -> Decoded:
    """``:predict``: the row format (``instances``) or the columnar one (``inputs``), for one signature."""
    outputs = _output_for(loaded, doc.get("signature_name"))
    if ("instances" in doc) == ("inputs" in doc):
        raise InvalidRequestError("send exactly one of 'instances' (row format) or 'inputs' (columnar format).")
    if "instances" in doc:
        return Decoded(_rows_to_inputs(loaded, doc["instances"]), outputs)
    return Decoded(_columnar_to_inputs(loaded, doc["inputs"]), outputs)


def _classify_request(loaded: LoadedVersion, doc: dict[str, Any]) -> Decoded:
    """``:classify``: the class probabilities of ``examples``."""
    raw = _examples(loaded, doc)
    if "predict_proba" not in loaded.validator.output_names or not loaded.classes:
        raise UnsupportedMethodError(f"model {loaded.name!r} has no class probabilities; it cannot :classify.")
    return Decoded(raw, ("predict_proba",))


def _regress_request(loaded: LoadedVersion, doc: dict[str, Any]) -> Decoded:
    """``:regress``: the primary output of ``examples``, for a model that is not a classifier."""
    raw = _examples(loaded, doc)
    if loaded.classes:
        raise UnsupportedMethodError(f"model {loaded.name!r} is a classifier; use :classify, not :regress.")
    return Decoded(raw, loaded.validator.output_names[:1])


_REQUESTS = {":predict": _predict_request, ":classify": _classify_request, ":regress": _regress_request}


def routes(dataplane: DataPlane) -> list[ApiRoute]:
    """The TF Serving REST routes, bound to ``dataplane``: one route per path form and operation, so that a
    wrong method is a 405 naming the right one."""
    limit = dataplane.options.max_body_bytes

    def resolve(request: Request, call: Call) -> LoadedVersion:
        params = request.path_params
        call.model = params["model"]
        loaded = dataplane.resolve(params["model"], params.get("version"), params.get("label"))
        call.version = loaded.version_text
        return loaded

    async def metadata(request: Request, call: Call) -> Response:
        loaded = resolve(request, call)
        return json_response(
            {
                "model_spec": {"name": loaded.name, "signature_name": "", "version": loaded.version_text},
                "metadata": {"signature_def": {"signature_def": signature_def(loaded)}},
            }
        )

    async def status(request: Request, call: Call) -> Response:
        params = request.path_params
        call.model = params["model"]
        entry = dataplane.entry(params["model"])
        statuses = dataplane.statuses(params["model"])
        if "label" in params:
            statuses = [s for s in statuses if s.version == resolve(request, call).version]
        elif "version" in params:
            statuses = [s for s in statuses if str(s.version) == params["version"]]
            if not statuses:
                raise ModelNotFoundError(
                    f"model {entry.name!r} has no version {params['version']}; it has {sorted(entry.versions)}."
                )
        return json_response(
            {
                "model_version_status": [
                    {
                        "version": str(s.version),
                        "state": s.state.value,
                        "status": {
                            "error_code": "UNKNOWN" if s.error and s.state is State.END else "OK",
                            "error_message": s.error,
                        },
                    }
                    for s in statuses
                ]
            }
        )

    def post(tail: str) -> Any:
        read = _REQUESTS[tail]

        async def handler(request: Request, call: Call) -> Response:
            params = request.path_params
            call.model = params["model"]
            doc: dict[str, Any] = {}

            async def decode(loaded: LoadedVersion) -> Decoded:
                nonlocal doc
                doc = await read_json(request, limit)
                return read(loaded, doc)

            done = await dataplane.infer(call, decode, params["model"], params.get("version"), params.get("label"))
            if tail == ":classify":
                labels = [str(c) for c in done.loaded.classes or ()]
                proba = done.outputs["predict_proba"]
                return json_response(
                    {"result": [[[lab, float(p)] for lab, p in zip(labels, row, strict=True)] for row in proba]}
                )
            out = next(iter(done.outputs.values()))
            if tail == ":regress":
                column = np.asarray(out, dtype=float).reshape(len(out), -1)[:, 0]
                return json_response({"result": [float(v) for v in column]})
            value = to_list(out)
            return json_response({"predictions": value} if "instances" in doc else {"outputs": value})

        return handler

    found: list[ApiRoute] = []
    for prefix, which in _PREFIXES:
        path = prefix.replace("{model}", "{model:name}").replace("{version}", "{version:name}")
        path = path.replace("{label}", "{label:name}")
        found.append(_route(dataplane, path, "GET", status, "Model version status" + which, _STATUS))
        found.append(_route(dataplane, path + "/metadata", "GET", metadata, "Signature definitions" + which,
                            _METADATA))
        for tail, summary in _POSTS:
            found.append(_route(dataplane, path + tail, "POST", post(tail), summary + which, None, tail))
    return found


def _route(dataplane: DataPlane, path: str, method: str, handler: Any, summary: str, answer: Any,
           tail: str = "") -> ApiRoute:
    extra: dict[str, Any] = {}
    if tail:
        request, answer, applies = _DOCS[tail]
        extra = {"request": request, "applies": applies, "statuses": (400, 404, 413, 500, 503)}
    return ApiRoute(path, endpoint(dataplane, "tfserving", _error, handler), methods=[method], summary=summary,
                    tag=_TAG, answer=answer, errors=ERROR_SCHEMA, **extra)


PROTOCOLS = (RestProtocol("tfserving", routes),)
