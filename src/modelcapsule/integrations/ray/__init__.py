"""Ray integration: capsules on Ray Serve and Ray Data, with the same checks as on one machine.

- :func:`capsule_deployment` / :func:`capsule_app` / :func:`app_builder`: a Ray Serve deployment whose
  replicas each run the ``capsule serve`` application (for your own ``serve.run`` or a config file),
  through Ray's HTTP proxy or, with ``ingress="direct"``, on each node's port themselves;
- :func:`serve_on_ray`: the body of ``capsule serve --ray``;
- :func:`predict_dataset`: the body of ``capsule predict --ray`` (Ray Data, one loaded model per actor).

Needs the ``ray`` extra (``pip install 'modelcapsule[ray]'``); Ray itself is imported by the functions
that use it, when they run.
"""

from __future__ import annotations

from .cluster import ray_session
from .data import predict_dataset
from .runner import RayServeInfo, serve_on_ray
from .scorer import CapsuleScorer
from .serve import app_builder, capsule_app, capsule_deployment, replica_app
from .sources import CapsuleSource, resolve_sources

__all__ = [
    "CapsuleScorer",
    "CapsuleSource",
    "RayServeInfo",
    "app_builder",
    "capsule_app",
    "capsule_deployment",
    "predict_dataset",
    "ray_session",
    "replica_app",
    "resolve_sources",
    "serve_on_ray",
]
