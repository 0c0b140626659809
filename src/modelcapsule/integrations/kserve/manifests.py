"""KServe manifests whose container runs ``capsule serve`` (DESIGN §11).

Two objects, as plain dictionaries (write them with :func:`write_manifests` or any YAML library):

- a ``ServingRuntime`` (``serving.kserve.io/v1alpha1``) for the model format ``modelcapsule``: the image
  built from ``capsule dockerfile``, ``capsule serve`` as the command, HTTP on 8080 (V2, TF Serving V1
  and the other REST protocols) and V2 gRPC on 8081, readiness on ``/v2/health/ready`` and liveness on
  ``/v2/health/live``, CPU and memory requests and limits, Prometheus scraping of ``/metrics``;
- an ``InferenceService`` (``serving.kserve.io/v1beta1``) for one capsule: KServe's storage initializer
  copies ``storageUri`` into ``/mnt/models`` and the container serves it under the service's name, so
  ``/v2/models/<name>/infer`` answers as KServe clients expect. KServe appends the service's ``args``
  to the runtime's, which is how the model path and name reach ``capsule serve``.

The container loads the capsule with every check at start (hashes, audit, golden sample) and only then
reports ready, so a pod with a bad capsule never takes traffic. Two ports need KServe's raw deployment
mode (Knative allows one port per container), which the InferenceService asks for.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.atomic import PLAIN_MODE, write_atomic
from .yamltext import dump_documents

__all__ = [
    "GRPC_PORT",
    "HTTP_PORT",
    "MODEL_FORMAT",
    "KServeTarget",
    "Resources",
    "inference_service",
    "serving_runtime",
    "target_for",
    "write_manifests",
]

HTTP_PORT = 8080
GRPC_PORT = 8081
MODEL_FORMAT = "modelcapsule"
MOUNT = "/mnt/models"
RUNTIME_NAME = "modelcapsule"
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Resources:
    """CPU and memory for the serving container, in Kubernetes quantities."""

    cpu_request: str = "1"
    cpu_limit: str = "2"
    memory_request: str = "1Gi"
    memory_limit: str = "2Gi"

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


@dataclass(frozen=True)
class KServeTarget:
    """What the InferenceService serves: its name, where KServe fetches the capsule, and what the
    container is then given (a capsule file under ``/mnt/models``, or ``/mnt/models`` itself)."""

    name: str
    storage_uri: str
    model_path: str
    annotations: Mapping[str, str] = field(default_factory=dict)


def serving_runtime(
    image: str,
    *,
    name: str = RUNTIME_NAME,
    namespace: str | None = None,
    resources: Resources | None = None,
    batch_size: int = 1,
    batch_wait_ms: float = 2.0,
) -> dict[str, Any]:
    """The ``ServingRuntime`` for capsules: ``capsule serve`` in ``image`` (one built from
    ``capsule dockerfile``, or any image with ``modelcapsule[serve,grpc]`` installed)."""
    args = ["--host", "0.0.0.0", "--port", str(HTTP_PORT), "--grpc-port", str(GRPC_PORT)]  # noqa: S104
    if batch_size > 1:
        args += ["--batch-size", str(batch_size), "--batch-wait-ms", f"{batch_wait_ms:g}"]

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": HTTP_PORT},
            "initialDelaySeconds": 5,
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": failures,
        }

    container = {
        "name": "kserve-container",
        "image": image,
        "command": ["capsule", "serve"],
        "args": args,
        "ports": [
            {"name": "http1", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": probe("/v2/health/ready", 5, 3),
        "livenessProbe": probe("/v2/health/live", 10, 6),
        "resources": (resources or Resources()).as_dict(),
    }
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": _metadata(
            name,
            namespace,
            {"prometheus.kserve.io/port": str(HTTP_PORT), "prometheus.kserve.io/path": "/metrics"},
        ),
        "spec": {
            "supportedModelFormats": [{"name": MODEL_FORMAT, "version": "1", "autoSelect": True}],
            "protocolVersions": ["v2", "v1", "grpc-v2"],
            "multiModel": False,
            "containers": [container],
        },
    }


def inference_service(
    target: KServeTarget,
    *,
    runtime: str = RUNTIME_NAME,
    namespace: str | None = None,
    min_replicas: int = 1,
    max_replicas: int | None = None,
) -> dict[str, Any]:
    """The ``InferenceService`` serving ``target`` with the runtime named ``runtime``."""
    annotations = {"serving.kserve.io/deploymentMode": "RawDeployment", **target.annotations}
    predictor: dict[str, Any] = {
        "minReplicas": min_replicas,
        "model": {
            "modelFormat": {"name": MODEL_FORMAT, "version": "1"},
            "runtime": runtime,
            "protocolVersion": "v2",
            "storageUri": target.storage_uri,
            "args": [target.model_path, "--name", target.name],
        },
    }
    if max_replicas is not None:
        predictor["maxReplicas"] = max_replicas
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": _metadata(target.name, namespace, annotations),
        "spec": {"predictor": predictor},
    }


def target_for(
    capsule: str | os.PathLike[str],
    *,
    name: str | None = None,
    storage_uri: str | None = None,
    storage_prefix: str | None = None,
) -> KServeTarget:
    """Describe a local capsule (file or unpacked directory), or a registry version (``models:/NAME@ALIAS``,
    ``models:/NAME/N``, from the registry ``$MODELCAPSULE_REGISTRY`` names), for :func:`inference_service`.

    The storage URI is ``storage_uri`` when given, else ``<storage_prefix>/<name>/<file name>``. The
    name is ``name`` or the capsule's manifest name, and must be a DNS label (lower case letters,
    digits and ``-``), as Kubernetes requires; the capsule's SHA-256 (of the file, or of its manifest for
    a directory) is recorded as an annotation so the cluster object names the exact bytes it serves.
    """
    import modelcapsule as mc

    text = os.fspath(capsule)
    file_name: str | None = None
    registered: dict[str, str] = {}
    if text.startswith("models:/"):  # a registry version: fetched (hash-checked), named as the registry names it
        from modelcapsule.registry import Registry

        with Registry(create=False) as registry:
            version = registry.get(text)
            path = registry.fetch(f"{version.name}/{version.version}")
        name = name or _dns_label(version.name)
        file_name = f"{version.name}-{version.version}.capsule"
        registered = {"modelcapsule.io/registry-version": version.uri}
    else:
        path = Path(text)
    manifest = mc.inspect(path)
    name = name or _dns_label(manifest.name)
    if not _DNS_LABEL.match(name) or len(name) > 63:
        raise ValueError(
            f"{name!r} is not a valid InferenceService name: use lower-case letters, digits and '-', "
            "starting with a letter (give one with --name)."
        )
    if storage_uri is None:
        if storage_prefix is None:
            raise ValueError(
                "say where the cluster finds the capsule: --storage-uri (s3://, gs://, pvc://, https://...) or "
                "--storage-prefix (the URI becomes <prefix>/<name>/<file name>)."
            )
        storage_uri = f"{storage_prefix.rstrip('/')}/{name}/{file_name or path.name}"
    if path.is_dir():
        # a directory URI is copied into /mnt/models: the unpacked capsule is /mnt/models itself
        model_path = MOUNT
        digest = hashlib.sha256((path / "capsule.json").read_bytes()).hexdigest()
    else:
        # a file URI is copied to /mnt/models/<its file name>
        model_path = f"{MOUNT}/{storage_uri.rstrip('/').rsplit('/', 1)[-1]}"
        digest = _sha256(path)
    annotations = {"modelcapsule.io/sha256": digest, "modelcapsule.io/capsule-name": manifest.name, **registered}
    return KServeTarget(name, storage_uri, model_path, annotations)


def write_manifests(
    out_dir: str | os.PathLike[str],
    target: KServeTarget,
    image: str,
    *,
    namespace: str | None = None,
    resources: Resources | None = None,
    runtime_name: str = RUNTIME_NAME,
    batch_size: int = 1,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``servingruntime.yaml`` and ``inferenceservice.yaml`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    documents = {
        "servingruntime.yaml": serving_runtime(
            image, name=runtime_name, namespace=namespace, resources=resources, batch_size=batch_size
        ),
        "inferenceservice.yaml": inference_service(target, runtime=runtime_name, namespace=namespace),
    }
    paths = [out / f for f in documents]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass --force to replace.")
    out.mkdir(parents=True, exist_ok=True)
    for path, document in zip(paths, documents.values(), strict=True):
        write_atomic(path, dump_documents([document]).encode("utf-8"), mode=PLAIN_MODE)
    return paths


def _metadata(name: str, namespace: str | None, annotations: Mapping[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {"app.kubernetes.io/managed-by": "modelcapsule"}
    meta["annotations"] = dict(annotations)
    return meta


def _dns_label(text: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    if label and not label[0].isalpha():
        label = f"m-{label}"
    return label[:63].rstrip("-") or "model"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
