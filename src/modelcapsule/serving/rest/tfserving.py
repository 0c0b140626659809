"""TF Serving's REST API v1: model status, metadata, ``:predict``, ``:classify`` and ``:regress``.

Shapes follow TensorFlow Serving's "RESTful API" documentation: status answers
``{"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {...}}]}``; predict takes
the row format (``instances`` → ``predictions``) or the columnar one (``inputs`` → ``outputs``), named
inputs as objects; errors are ``{"error": "..."}``.

Signatures: ``serving_default`` gives the model's primary output (``predict``); every other output is a
signature of its own, named after its method (``"signature_name": "predict_proba"``).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from ...types import TensorSpec
from ..dataplane import DataPlane
from ..dtypes import numpy_to_tf
from ..errors import InvalidRequestError, ModelNotFoundError, Status, UnsupportedMethodError
from ..models import LoadedVersion, State
from ..openapi import JSON_BODY, ApiRoute, Operation
from ..transport import Decoded
from .common import Call, RestProtocol, endpoint, json_response, read_json, to_list

__all__ = ["PROTOCOLS", "routes"]

DEFAULT_SIGNATURE = "serving_default"
_PATH = re.compile(
    r"^(?P<model>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<tail>/metadata|:predict|:classify|:regress)?$"
)
_TAG = "TF Serving"
_PREFIXES = (
    ("/v1/models/{model}", ""),
    ("/v1/models/{model}/versions/{version}", " (one version)"),
    ("/v1/models/{model}/labels/{label}", " (a labelled version)"),
)
_GETS = (("", "Model version status"), ("/metadata", "Signature definitions"))
_POSTS = ((":predict", "Predict (instances or inputs)"), (":classify", "Classify examples"),
          (":regress", "Regress examples"))


def _operations(method: str) -> list[Operation]:
    """What the one pattern route ``/v1/models/{rest:path}`` answers, operation by operation."""
    tails = _GETS if method == "GET" else _POSTS
    body = JSON_BODY if method == "POST" else None
    return [
        Operation(prefix + tail, method.lower(), summary + which, _TAG, body)
        for prefix, which in _PREFIXES
        for tail, summary in tails
    ]


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
    """The TF Serving REST routes, bound to ``dataplane``."""
    limit = dataplane.options.max_body_bytes

    def parse(request: Request, call: Call) -> re.Match[str]:
        match = _PATH.match(request.path_params["rest"])
        if match is None:
            raise ModelNotFoundError(
                f"no TF Serving route {request.url.path!r}; use /v1/models/NAME[/versions/N|/labels/L]"
                "[/metadata|:predict|:classify|:regress]."
            )
        call.model = match["model"]
        return match

    def resolve(match: re.Match[str], call: Call) -> LoadedVersion:
        loaded = dataplane.resolve(match["model"], match["version"], match["label"])
        call.version = loaded.version_text
        return loaded

    async def get(request: Request, call: Call) -> Response:
        match = parse(request, call)
        if match["tail"] == "/metadata":
            loaded = resolve(match, call)
            return json_response(
                {
                    "model_spec": {"name": loaded.name, "signature_name": "", "version": loaded.version_text},
                    "metadata": {"signature_def": {"signature_def": signature_def(loaded)}},
                }
            )
        if match["tail"] is not None:
            raise InvalidRequestError(f"{match['tail']} takes POST, not GET.")
        entry = dataplane.entry(match["model"])
        statuses = dataplane.statuses(match["model"])
        if match["label"] is not None:
            statuses = [s for s in statuses if s.version == resolve(match, call).version]
        elif match["version"] is not None:
            statuses = [s for s in statuses if str(s.version) == match["version"]]
            if not statuses:
                raise ModelNotFoundError(
                    f"model {entry.name!r} has no version {match['version']}; it has {sorted(entry.versions)}."
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

    async def post(request: Request, call: Call) -> Response:
        match = parse(request, call)
        tail = match["tail"]
        if tail not in _REQUESTS:
            raise InvalidRequestError("POST goes to :predict, :classify or :regress.")
        read = _REQUESTS[tail]
        doc: dict[str, Any] = {}

        async def decode(loaded: LoadedVersion) -> Decoded:
            nonlocal doc
            doc = await read_json(request, limit)
            return read(loaded, doc)

        done = await dataplane.infer(call, decode, match["model"], match["version"], match["label"])
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

    def route(method: str, handler: Any) -> ApiRoute:
        return ApiRoute("/v1/models/{rest:path}", endpoint(dataplane, "tfserving", _error, handler), methods=[method],
                        summary="", tag=_TAG, operations=_operations(method))

    return [route("GET", get), route("POST", post)]


PROTOCOLS = (RestProtocol("tfserving", routes),)
