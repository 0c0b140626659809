"""Ray Serve: every replica runs the whole ``capsule serve`` application (DESIGN §11).

Each replica builds the same ASGI app ``capsule serve`` runs (:func:`modelcapsule.serving.create_app`
over a :class:`~modelcapsule.serving.DataPlane`) inside the replica process, through ``serve.ingress``.
The app's start-up loads every capsule with every check (hashes, audit against the trust policy, golden
sample) in that replica, so a replica never serves a model it did not check itself; every REST protocol
(TF Serving, V2, Seldon, the plain recipe, MLflow), ``/metrics`` and the page answer on Ray's HTTP proxy,
and adaptive batching happens inside the replica, where the requests meet. With ``ingress="direct"``
each replica also serves the application on its node's port itself, with ``capsule serve``'s own HTTP
server (:mod:`.direct`), for a load balancer in front of each node instead of Ray's proxy.

For your own ``serve.run`` or a Serve config file::

    from ray import serve
    from modelcapsule.integrations.ray import capsule_app
    serve.run(capsule_app(["iris.capsule"], replicas=2), route_prefix="/")

    # config.yaml:  applications: [{name: iris, route_prefix: /,
    #                 import_path: "modelcapsule.integrations.ray:app_builder",
    #                 args: {capsules: [/models/iris.capsule], batch_size: 32, replicas: auto}}]
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ...serving import DataPlane, Repository, ServerOptions, ServeSettings, ServingMetrics, create_app
from .sources import CapsuleSource, resolve_sources

if TYPE_CHECKING:
    from ray.serve import Application, Deployment
    from starlette.types import ASGIApp

__all__ = [
    "DEFAULT_DEPLOYMENT_NAME",
    "INGRESS_MODES",
    "Ingress",
    "Replicas",
    "app_builder",
    "capsule_app",
    "capsule_deployment",
    "deployment_settings",
    "replica_app",
]

DEFAULT_DEPLOYMENT_NAME = "ModelCapsule"
Replicas = int | Literal["auto"]
Ingress = Literal["proxy", "direct"]
INGRESS_MODES: tuple[Ingress, ...] = ("proxy", "direct")

MIN_ONGOING_REQUESTS = 64
"""Requests one replica accepts at once. Ray's default (5) would cap every batch at 5 rows; the data
plane queues and batches requests itself, so a replica takes many and the proxy only queues beyond."""


def replica_app(sources: Sequence[CapsuleSource], name: str | None, options: ServerOptions) -> ASGIApp:
    """The ASGI app one replica serves: the same app as ``capsule serve``, built in the replica.

    Its lifespan start-up loads and checks every capsule (Ray runs it before the replica takes traffic)
    and polls the sources every ``options.poll_seconds`` for new versions, as ``capsule serve`` does."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(options.numeric_threads))
    repository = Repository([Path(s.path) for s in sources], options, name=name)
    return create_app(DataPlane(repository, options=options, metrics=ServingMetrics()))


def capsule_deployment(
    sources: Sequence[str | os.PathLike[str]],
    *,
    name: str | None = None,
    options: ServerOptions | None = None,
    replicas: Replicas = 1,
    autoscaling_config: Mapping[str, Any] | None = None,
    max_ongoing_requests: int | None = None,
    ray_actor_options: Mapping[str, Any] | None = None,
    deployment_name: str = DEFAULT_DEPLOYMENT_NAME,
    ingress: Ingress = "proxy",
    direct: ServeSettings | None = None,
) -> Deployment:
    """A Ray Serve deployment whose replicas each serve ``sources`` (capsules or repositories).

    ``replicas`` is a fixed count or ``"auto"`` (Ray's autoscaling; ``autoscaling_config`` is passed
    through and overrides the defaults set here: a replica aims at ``batch_size`` requests in flight when
    batching is on). ``options`` are the server options of ``capsule serve`` (batching, trust names,
    runtime...). ``ray_actor_options`` default to one CPU per replica.

    ``ingress="proxy"`` serves the application through Ray Serve's HTTP proxy only. ``ingress="direct"``
    also makes every replica serve it itself, with ``capsule serve``'s HTTP server, on ``direct.host`` and
    ``direct.port`` of its node (shared by the node's replicas through ``SO_REUSEPORT``; ``direct`` also
    carries the read timeout, keep-alive, connection limit and TLS files), for a load balancer in front of
    each node (see :mod:`.direct`); with ``replicas="auto"`` its replicas report the requests they serve
    themselves and :func:`.autoscaling.direct_ingress_policy` scales on them (Ray only sees its own).
    """
    from ray import serve

    options = options or ServerOptions()
    resolved = resolve_sources(sources)
    if name is not None and len(resolved) != 1:
        raise ValueError("name applies to a single capsule, not to a repository or several sources")
    if ingress not in INGRESS_MODES:
        raise ValueError(f"ingress must be one of {list(INGRESS_MODES)}, not {ingress!r}")
    if direct is not None and ingress != "direct":
        raise ValueError("direct (the replicas' own listening address) applies with ingress='direct' only")
    settings = deployment_settings(
        options,
        replicas=replicas,
        autoscaling_config=autoscaling_config,
        max_ongoing_requests=max_ongoing_requests,
        ray_actor_options=ray_actor_options,
        ingress=ingress,
    )

    if ingress == "direct":
        from .direct import direct_replica_class

        wrapped = serve.ingress()(direct_replica_class(resolved, name, options, direct or ServeSettings()))
        return serve.deployment(name=deployment_name, **settings)(wrapped)

    def build_app() -> ASGIApp:  # runs in each replica, when it starts
        return replica_app(resolved, name, options)

    class ModelCapsuleReplica:
        """One replica: the ``capsule serve`` application over the resolved sources."""

    wrapped = serve.ingress(build_app)(ModelCapsuleReplica)
    return serve.deployment(name=deployment_name, **settings)(wrapped)


def deployment_settings(
    options: ServerOptions,
    *,
    replicas: Replicas = 1,
    autoscaling_config: Mapping[str, Any] | None = None,
    max_ongoing_requests: int | None = None,
    ray_actor_options: Mapping[str, Any] | None = None,
    ingress: Ingress = "proxy",
) -> dict[str, Any]:
    """The keyword arguments of ``serve.deployment`` for a capsule deployment (see
    :func:`capsule_deployment`): replicas, autoscaling, how many requests a replica takes at once (enough
    to fill its batches), one CPU per replica by default, and quiet replica logs (the app keeps its own
    metrics; Ray's per-request access log is off)."""
    if replicas != "auto" and (isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1):
        raise ValueError(f"replicas must be a positive integer or 'auto', not {replicas!r}")
    settings: dict[str, Any] = {
        "num_replicas": replicas,
        "max_ongoing_requests": max_ongoing_requests or max(MIN_ONGOING_REQUESTS, 2 * options.batch_size),
        "ray_actor_options": {"num_cpus": 1, **(ray_actor_options or {})},
        "logging_config": {"log_level": "WARNING", "enable_access_log": False},
    }
    if replicas == "auto":
        autoscaling: dict[str, Any] = {}
        if options.batch_size > 1:  # a replica is busy, not overloaded, with a full batch in flight
            autoscaling["target_ongoing_requests"] = options.batch_size
        if ingress == "direct":  # count the requests the replicas serve themselves, not only Ray's
            from .autoscaling import direct_ingress_policy

            autoscaling["policy"] = {"policy_function": direct_ingress_policy}
        autoscaling.update(autoscaling_config or {})
        if autoscaling:
            settings["autoscaling_config"] = autoscaling
    elif autoscaling_config:
        raise ValueError("autoscaling_config applies with replicas='auto' only")
    return settings


def capsule_app(sources: Sequence[str | os.PathLike[str]], **kwargs: Any) -> Application:
    """:func:`capsule_deployment` bound and ready for ``serve.run`` (same keyword arguments)."""
    return capsule_deployment(sources, **kwargs).bind()


_OPTION_KEYS = {f.name for f in fields(ServerOptions)}
_DEPLOYMENT_KEYS = {"replicas", "autoscaling_config", "max_ongoing_requests", "ray_actor_options", "deployment_name",
                    "ingress"}
_DIRECT_KEYS = {"host", "port", "read_timeout", "keep_alive_seconds", "max_connections", "tls_cert", "tls_key",
                "tls_client_ca"}


def app_builder(args: Mapping[str, Any]) -> Application:
    """Application builder for Ray Serve config files (``import_path: modelcapsule.integrations.ray:app_builder``).

    ``args`` holds ``capsules`` (a list of paths), optionally ``name``, any :class:`ServerOptions` field
    (``batch_size``, ``batch_wait_ms``, ``poll_seconds``, ``max_body_bytes``, ``trusted``, ``runtime``...)
    and the deployment settings of :func:`capsule_deployment` (``replicas``, ``autoscaling_config``,
    ``max_ongoing_requests``, ``ray_actor_options``, ``ingress``); with ``ingress: direct``, the replicas'
    own server takes ``host``, ``port``, ``read_timeout``, ``keep_alive_seconds``, ``max_connections`` and
    the ``tls_*`` files. Unknown keys are refused, so a typo never leaves a default in force silently.
    """
    args = dict(args)
    capsules = args.pop("capsules", None)
    if not capsules or isinstance(capsules, str) or not isinstance(capsules, Sequence):
        raise ValueError("args.capsules must be a list of capsule or repository paths")
    unknown = sorted(set(args) - _OPTION_KEYS - _DEPLOYMENT_KEYS - _DIRECT_KEYS - {"name"})
    if unknown:
        allowed = sorted(_OPTION_KEYS | _DEPLOYMENT_KEYS | _DIRECT_KEYS | {"capsules", "name"})
        raise ValueError(f"unknown key(s) {unknown} in the application's args; allowed keys are {allowed}")
    option_args = {k: args.pop(k) for k in list(args) if k in _OPTION_KEYS}
    if "trusted" in option_args:
        option_args["trusted"] = tuple(option_args["trusted"])
    options = replace(ServerOptions(), **option_args)
    direct_args = {k: args.pop(k) for k in list(args) if k in _DIRECT_KEYS}
    if direct_args:
        if args.get("ingress") != "direct":
            raise ValueError(f"{sorted(direct_args)} configure the replicas' own server: they need ingress: direct")
        for key in ("tls_cert", "tls_key", "tls_client_ca"):
            if direct_args.get(key) is not None:
                direct_args[key] = Path(direct_args[key])
        args["direct"] = replace(ServeSettings(), **direct_args)
    return capsule_app([str(c) for c in capsules], options=options, **args)
