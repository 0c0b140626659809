"""KServe: a ``ServingRuntime`` and an ``InferenceService`` whose container runs ``capsule serve``.

``capsule kserve CAPSULE --image IMAGE --storage-uri URI -o DIR`` writes both as YAML for
``kubectl apply -f DIR``; in Python, :func:`serving_runtime` and :func:`inference_service` return them as
dictionaries. Nothing here imports a Kubernetes or KServe library.
"""

from __future__ import annotations

from .manifests import (
    GRPC_PORT,
    HTTP_PORT,
    MODEL_FORMAT,
    KServeTarget,
    Resources,
    inference_service,
    serving_runtime,
    target_for,
    write_manifests,
)
from .yamltext import dump_documents, to_yaml

__all__ = [
    "GRPC_PORT",
    "HTTP_PORT",
    "MODEL_FORMAT",
    "KServeTarget",
    "Resources",
    "dump_documents",
    "inference_service",
    "serving_runtime",
    "target_for",
    "to_yaml",
    "write_manifests",
]
