"""``capsule serve PATH_OR_REPO…``: serve capsules over every supported protocol (DESIGN §5, §6)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

if TYPE_CHECKING:
    from ..serving import ServeSettings
    from ..serving.registry_models import RegistryModels

__all__ = ["command", "curl_example", "grpc_port_if_installed"]


def curl_example(dataplane: object, host: str, port: int) -> str:
    """A ``curl`` line that gets a prediction from the first served model (printed at start-up)."""
    from ..serving.dataplane import DataPlane

    if not isinstance(dataplane, DataPlane):
        raise TypeError("curl_example needs the server's DataPlane")
    for name, entry in sorted(dataplane.models.items()):
        available = entry.available()
        if not available or available[0].signature is None or not available[0].signature.inputs:
            continue
        spec = available[0].signature.inputs[0]
        if spec.columns:
            width = len(spec.columns)
        else:
            width = spec.shape[1] if len(spec.shape) == 2 and spec.shape[1] > 0 else 1
        body = {"inputs": [[0] * width]}
        query = "" if len(dataplane.models) == 1 else f"?model={name}"
        url_host = f"[{host}]" if ":" in host else host
        return (
            f"curl -s -X POST 'http://{url_host}:{port}/predict{query}' -H 'Content-Type: application/json' "
            f"-d '{json.dumps(body)}'"
        )
    return ""


@click.command("serve")
@click.argument("paths", nargs=-1, required=True, metavar="PATH_OR_URI...")
@click.option(
    "--registry",
    "registry_location",
    metavar="URL",
    help="The registry of models:/ sources (a directory, database URL or http(s):// URL); "
    "default $MODELCAPSULE_REGISTRY, else ./modelcapsule-registry.",
)
@click.option("--store", metavar="DIR", help="Blob directory of a database --registry (default $MODELCAPSULE_STORE).")
@click.option(
    "--rollback-on-failure",
    is_flag=True,
    help="When an alias's new target fails to load, verify, or answer, move the alias back in the registry.",
)
@click.option(
    "--watch-calls",
    default=100,
    show_default=True,
    type=click.IntRange(1),
    help="After a label or alias moves, how many model calls of the new version are watched for errors.",
)
@click.option(
    "--max-error-rate",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of failed watched calls above which the new version is swapped out again.",
)
@click.option("--name", help="Serve a single capsule under this name instead of its manifest name.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="HTTP port.")
@click.option("--grpc-port", default=8081, show_default=True, type=click.IntRange(0, 65535), help="V2 gRPC port.")
@click.option("--no-grpc", is_flag=True, help="Do not start the gRPC server.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes sharing the loaded models' memory.",
)
@click.option(
    "--max-restarts",
    default=5,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="Dead workers replaced within --restart-window before the server stops (a crash loop).",
)
@click.option(
    "--restart-window",
    default=60.0,
    show_default=True,
    type=click.FloatRange(1, 86_400),
    help="Seconds over which --max-restarts counts worker replacements.",
)
@click.option(
    "--batch-size",
    default=1,
    show_default=True,
    type=click.IntRange(1, 65536),
    help="Adaptive batching: most rows per model call (on when > 1).",
)
@click.option(
    "--batch-wait-ms",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0, 10_000),
    help="Adaptive batching: longest a request waits for others.",
)
@click.option(
    "--poll-seconds",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.05, 86_400),
    help="How often the repository is scanned for new versions.",
)
@click.option(
    "--max-body-bytes",
    default=64 << 20,
    show_default=True,
    type=click.IntRange(1),
    help="Largest request body; larger ones get 413.",
)
@click.option(
    "--threads",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Threads calling models, and BLAS/OpenMP threads per call.",
)
@click.option(
    "--trust",
    "trusted",
    multiple=True,
    metavar="NAME",
    help="An extra module.qualname the loader may import (repeatable).",
)
@click.option(
    "--runtime",
    default="flat",
    show_default=True,
    type=click.Choice(["flat", "python", "onnx", "auto"]),
    help="flat: a tree ensemble's stored flat trees, proven bit-identical at save and on the golden sample at "
    "load, without importing scikit-learn (other capsules: the saved object); python: always the saved model "
    "object; onnx: its ONNX export through onnxruntime; auto: the faster of python and onnx on the golden sample.",
)
@click.option(
    "--max-queue",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Requests per model (per worker) waiting for the model past which new ones get 503 with Retry-After "
    "(gRPC UNAVAILABLE); 0: no limit. serving.toml: max_queue.",
)
@click.option(
    "--max-connections",
    default=None,
    type=click.IntRange(1),
    help="Concurrent HTTP connections (and gRPC calls) per worker past which requests get 503 "
    "(gRPC RESOURCE_EXHAUSTED). Default: no limit.",
)
@click.option(
    "--read-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds a request may take to arrive whole (headers and body); slower clients get 408 and are "
    "disconnected. 0: no limit.",
)
@click.option(
    "--keep-alive",
    default=30.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds an idle keep-alive connection stays open.",
)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="PEM certificate chain: serve HTTPS "
              "and gRPC over TLS (with --tls-key).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="PEM private key of --tls-cert.")
@click.option("--tls-client-ca", type=click.Path(exists=True, dir_okay=False),
              help="PEM CA bundle: require client certificates it signed (mutual TLS).")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False),
              help="Bearer tokens (one per line) that inference and admin routes require; health routes are exempt.")
@click.option("--protect-health", is_flag=True, help="With --token-file, require a token on health routes too.")
@click.option("--registry-token", metavar="TOKEN", envvar="MODELCAPSULE_TOKEN",
              help="Token for an http(s):// --registry (default $MODELCAPSULE_TOKEN).")
@click.option("--no-access-log", is_flag=True, help="Do not log one JSON line per request.")
@click.option("--ray", "on_ray", is_flag=True, help="Serve on Ray Serve: every replica loads and checks the capsules.")
@click.option(
    "--ray-address",
    metavar="ADDRESS",
    help="With --ray: join this cluster ('auto', host:6379, ray://host:10001); default: a local one for this command.",
)
@click.option(
    "--replicas",
    default="1",
    show_default=True,
    metavar="N|auto",
    help="With --ray: replicas of the application, or 'auto' for Ray's autoscaling.",
)
@click.option(
    "--ray-ingress",
    type=click.Choice(["proxy", "direct"]),
    default="proxy",
    show_default=True,
    help="With --ray: 'proxy' serves through Ray Serve's HTTP proxy on --port; 'direct' makes every replica "
    "serve on --port of its node itself (capsule serve's HTTP server, shared by the node's replicas), for a "
    "load balancer in front of each node.",
)
@click.option(
    "--ray-proxy-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="With --ray-ingress direct: the port of Ray Serve's own HTTP proxy, which also routes to the "
    "replicas (default 8000, Ray's).",
)
def command(
    paths: tuple[str, ...],
    registry_location: str | None,
    store: str | None,
    rollback_on_failure: bool,
    watch_calls: int,
    max_error_rate: float,
    name: str | None,
    host: str,
    port: int,
    grpc_port: int,
    no_grpc: bool,
    workers: int,
    max_restarts: int,
    restart_window: float,
    batch_size: int,
    batch_wait_ms: float,
    poll_seconds: float,
    max_body_bytes: int,
    threads: int,
    trusted: tuple[str, ...],
    runtime: str,
    max_queue: int,
    max_connections: int | None,
    read_timeout: float,
    keep_alive: float,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    token_file: str | None,
    protect_health: bool,
    registry_token: str | None,
    no_access_log: bool,
    on_ray: bool,
    ray_address: str | None,
    replicas: str,
    ray_ingress: str,
    ray_proxy_port: int | None,
) -> None:
    """Serve capsules, repositories (<name>/<version>/) or registry models (models:/NAME[@ALIAS]) over TF
    Serving REST, V2 REST and gRPC, Seldon, the plain /predict recipe and MLflow's /invocations, until Ctrl-C.

    A registry model is served with every version addressable and its aliases as labels; its unversioned
    routes follow ALIAS (else the newest version) and move when the alias moves."""
    from ..core.threads import default_numeric_threads

    default_numeric_threads(threads)  # before numpy loads: its BLAS then starts no pool (core/threads.py)
    from ..serving import ServerOptions, ServeSettings, serve
    from ..serving.dataplane import DataPlane
    from ..serving.registry_models import is_registry_uri

    files = [Path(p) for p in paths if not is_registry_uri(p)]
    missing = [str(p) for p in files if not p.exists()]
    if missing:
        raise click.BadParameter(f"{', '.join(missing)} does not exist.", param_hint="'PATH_OR_URI...'")
    if (tls_cert is None) != (tls_key is None) or (tls_client_ca is not None and tls_cert is None):
        raise click.UsageError("--tls-cert and --tls-key go together (and --tls-client-ca needs them).")
    from ..serving.auth import Tokens

    try:
        tokens = Tokens.from_file(token_file, protect_health=protect_health) if token_file else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--token-file'") from None
    registry = _registry_models([p for p in paths if is_registry_uri(p)], registry_location, store,
                                rollback_on_failure, port, registry_token)

    options = ServerOptions(
        batch_size=batch_size,
        batch_wait_ms=batch_wait_ms,
        poll_seconds=poll_seconds,
        max_body_bytes=max_body_bytes,
        predict_threads=threads,
        numeric_threads=threads,
        trusted=trusted,
        runtime=runtime,
        watch_calls=watch_calls,
        max_error_rate=max_error_rate,
        max_queue=max_queue,
        tokens=tokens,
    )
    ray_options = on_ray or ray_address is not None or replicas != "1" or ray_ingress != "proxy"
    ray_options = ray_options or ray_proxy_port is not None
    settings = ServeSettings(
        host=host,
        port=port,
        grpc_port=None if no_grpc or ray_options else grpc_port_if_installed(click.get_current_context(), grpc_port),
        workers=workers,
        access_log=not no_access_log,
        max_restarts=max_restarts,
        restart_window_seconds=restart_window,
        max_connections=max_connections,
        read_timeout=read_timeout,
        keep_alive_seconds=keep_alive,
        tls_cert=Path(tls_cert) if tls_cert else None,
        tls_key=Path(tls_key) if tls_key else None,
        tls_client_ca=Path(tls_client_ca) if tls_client_ca else None,
    )
    if ray_options:
        if registry_location is not None:  # registry URIs are resolved once, in this driver process
            os.environ["MODELCAPSULE_REGISTRY"] = registry_location
        if store is not None:
            os.environ["MODELCAPSULE_STORE"] = store
        on_ray_settings = RayCommand(on_ray, ray_address, replicas, ray_ingress, ray_proxy_port)
        _serve_on_ray(paths, name, settings, options, on_ray_settings)
        return

    def ready(dataplane: DataPlane) -> None:
        for model, entry in sorted(dataplane.models.items()):
            versions = ", ".join(str(v.version) for v in entry.available()) or "none available"
            click.echo(f"serving {model} (versions: {versions})")
            for number, status in sorted(entry.versions.items()):
                if status.error:
                    click.echo(f"  version {number} refused: {status.error}", err=True)
        grpc_text = "" if settings.grpc_port is None else f", gRPC on {host}:{settings.grpc_port}"
        scheme = "https" if settings.tls_cert else "http"
        click.echo(f"listening on {scheme}://{host}:{port}{grpc_text}; Ctrl-C stops")
        line = curl_example(dataplane, host, port)
        if line and settings.tls_cert:
            line = line.replace("curl -s", "curl -s --cacert CA.pem", 1).replace("'http://", "'https://", 1)
        if line and tokens is not None:
            line += " -H \"Authorization: Bearer $TOKEN\""
        if line:
            click.echo(f"try: {line}")
        sys.stdout.flush()

    try:
        serve(files, name=name, settings=settings, options=options, on_ready=ready, registry=registry)
    except (ValueError, FileNotFoundError, LookupError) as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            str(exc) if "cannot listen" in str(exc) else f"cannot listen on {host}:{port}: {exc}"
        ) from None


def _grpc_installed() -> bool:
    """The grpc extra: protobuf for the V2 messages and hpack for HTTP/2 header blocks."""
    try:
        import google.protobuf  # noqa: F401
        import hpack  # noqa: F401
    except ImportError:
        return False
    return True


def grpc_port_if_installed(ctx: click.Context, grpc_port: int) -> int | None:
    """``grpc_port``, or None when the grpc extra is missing and ``ctx`` took the port's default (the ``serve``
    extra alone serves every REST protocol); an explicit ``--grpc-port`` without it is a usage error."""
    if _grpc_installed():
        return grpc_port
    if ctx.get_parameter_source("grpc_port") is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--grpc-port needs the grpc extra: pip install 'modelcapsule[grpc]' (or --no-grpc).")
    click.echo("gRPC is off: it needs the grpc extra (pip install 'modelcapsule[grpc]').", err=True)
    return None


def _registry_models(uris: list[str], location: str | None, store: str | None, rollback_on_failure: bool,
                     port: int, token: str | None = None) -> RegistryModels | None:
    """The registry side of the sources, or None when every source is a path."""
    if not uris:
        return None
    from functools import partial

    from ..registry import Registry
    from ..serving.registry_models import RegistryModels, parse_registry_source, server_identity

    try:
        models = [parse_registry_source(uri) for uri in uris]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'PATH_OR_URI...'") from None
    return RegistryModels(partial(Registry, location, store=store, token=token, create=False), models,
                          rollback_on_failure=rollback_on_failure, identity=server_identity(port))


@dataclass(frozen=True)
class RayCommand:
    """The ``--ray*`` options of ``capsule serve``."""

    on_ray: bool
    address: str | None
    replicas: str
    ingress: str
    proxy_port: int | None


def _serve_on_ray(
    paths: tuple[str, ...],
    name: str | None,
    settings: ServeSettings,
    options: object,
    ray: RayCommand,
) -> None:
    """``capsule serve --ray``: the same application on Ray Serve (modelcapsule.integrations.ray)."""
    if not ray.on_ray:
        raise click.UsageError("--ray-address, --replicas, --ray-ingress and --ray-proxy-port apply with --ray only.")
    if settings.workers != 1:
        raise click.UsageError("--workers does not apply with --ray; use --replicas N (one process each).")
    if ray.replicas != "auto" and (not ray.replicas.isdigit() or int(ray.replicas) < 1):
        raise click.UsageError(f"--replicas takes a positive number or 'auto', not {ray.replicas!r}.")
    replicas: int | Literal["auto"] = "auto" if ray.replicas == "auto" else int(ray.replicas)
    ingress: Literal["proxy", "direct"] = "direct" if ray.ingress == "direct" else "proxy"
    if ingress == "proxy" and ray.proxy_port is not None:
        raise click.UsageError("--ray-proxy-port applies with --ray-ingress direct (the proxy listens on --port).")
    if ingress == "proxy" and settings.tls_cert is not None:
        raise click.UsageError("--tls-cert applies on Ray with --ray-ingress direct only (Ray's proxy speaks HTTP).")
    try:
        from ..integrations.ray import RayServeInfo, serve_on_ray
    except ImportError as exc:
        raise click.UsageError(f"--ray needs Ray Serve: pip install 'modelcapsule[ray]' ({exc}).") from None
    from ..serving import ServerOptions

    if not isinstance(options, ServerOptions):
        raise TypeError("options must be ServerOptions")

    def ready(info: RayServeInfo) -> None:
        where = "a local Ray cluster" if info.local_cluster else f"the Ray cluster at {ray.address}"
        state = "ready" if info.ready else "NOT ready (no model loaded; see the replica logs above)"
        click.echo(f"serving {', '.join(map(str, paths))} on {where}: {info.replicas} replica(s), {state}")
        if info.ingress == "direct":
            click.echo(f"listening on {info.url} (each replica serves this port of its node; Ray Serve's "
                       f"proxy also routes at {info.proxy_url}; no V2 gRPC on Ray); Ctrl-C stops")
        else:
            click.echo(f"listening on {info.url} (Ray Serve's HTTP proxy; no V2 gRPC on Ray); Ctrl-C stops")
        sys.stdout.flush()

    try:
        serve_on_ray(
            [str(p) for p in paths],
            name=name,
            options=options,
            host=settings.host,
            port=settings.port,
            address=ray.address,
            replicas=replicas,
            on_ready=ready,
            ingress=ingress,
            direct=_absolute_files(settings) if ingress == "direct" else None,
            proxy_port=ray.proxy_port,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc)) from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: Ray could not deploy the application
        raise click.ClickException(str(exc)) from None


def _absolute_files(settings: ServeSettings) -> ServeSettings:
    """The settings with absolute TLS file paths: replicas run in Ray worker processes, in other folders."""
    from dataclasses import replace

    names = ("tls_cert", "tls_key", "tls_client_ca")
    files = {k: v.resolve() for k in names if (v := getattr(settings, k)) is not None}
    return replace(settings, **files)
