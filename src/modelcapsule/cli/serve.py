"""``capsule serve PATH_OR_REPO…``: serve capsules over every supported protocol (DESIGN §5, §6)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

import click

__all__ = ["command", "curl_example"]


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
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
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
    default="python",
    show_default=True,
    help="python (the saved model object) or onnx (its ONNX export through onnxruntime, when it has one).",
)
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
def command(
    paths: tuple[Path, ...],
    name: str | None,
    host: str,
    port: int,
    grpc_port: int,
    no_grpc: bool,
    workers: int,
    batch_size: int,
    batch_wait_ms: float,
    poll_seconds: float,
    max_body_bytes: int,
    threads: int,
    trusted: tuple[str, ...],
    runtime: str,
    no_access_log: bool,
    on_ray: bool,
    ray_address: str | None,
    replicas: str,
) -> None:
    """Serve capsules or a repository (<name>/<version>/) over TF Serving REST, V2 REST and gRPC, Seldon,
    the plain /predict recipe and MLflow's /invocations, until Ctrl-C."""
    from ..serving import ServerOptions, ServeSettings, serve
    from ..serving.dataplane import DataPlane

    options = ServerOptions(
        batch_size=batch_size,
        batch_wait_ms=batch_wait_ms,
        poll_seconds=poll_seconds,
        max_body_bytes=max_body_bytes,
        predict_threads=threads,
        numeric_threads=threads,
        trusted=trusted,
        runtime=runtime,
    )
    if on_ray or ray_address is not None or replicas != "1":
        _serve_on_ray(paths, name, host, port, workers, options, on_ray, ray_address, replicas)
        return
    settings = ServeSettings(
        host=host,
        port=port,
        grpc_port=None if no_grpc else grpc_port,
        workers=workers,
        access_log=not no_access_log,
    )

    def ready(dataplane: DataPlane) -> None:
        for model, entry in sorted(dataplane.models.items()):
            versions = ", ".join(str(v.version) for v in entry.available()) or "none available"
            click.echo(f"serving {model} (versions: {versions})")
            for number, status in sorted(entry.versions.items()):
                if status.error:
                    click.echo(f"  version {number} refused: {status.error}", err=True)
        grpc_text = "" if settings.grpc_port is None else f", gRPC on {host}:{settings.grpc_port}"
        click.echo(f"listening on http://{host}:{port}{grpc_text}; Ctrl-C stops")
        line = curl_example(dataplane, host, port)
        if line:
            click.echo(f"try: {line}")
        sys.stdout.flush()

    try:
        serve([Path(p) for p in paths], name=name, settings=settings, options=options, on_ready=ready)
    except (ValueError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            str(exc) if "cannot listen" in str(exc) else f"cannot listen on {host}:{port}: {exc}"
        ) from None


def _serve_on_ray(
    paths: tuple[Path, ...],
    name: str | None,
    host: str,
    port: int,
    workers: int,
    options: object,
    on_ray: bool,
    address: str | None,
    replicas_text: str,
) -> None:
    """``capsule serve --ray``: the same application on Ray Serve (modelcapsule.integrations.ray)."""
    if not on_ray:
        raise click.UsageError("--ray-address and --replicas apply with --ray only.")
    if workers != 1:
        raise click.UsageError("--workers does not apply with --ray; use --replicas N (one process each).")
    if replicas_text != "auto" and (not replicas_text.isdigit() or int(replicas_text) < 1):
        raise click.UsageError(f"--replicas takes a positive number or 'auto', not {replicas_text!r}.")
    replicas: int | Literal["auto"] = "auto" if replicas_text == "auto" else int(replicas_text)
    try:
        from ..integrations.ray import RayServeInfo, serve_on_ray
    except ImportError as exc:
        raise click.UsageError(f"--ray needs Ray Serve: pip install 'modelcapsule[ray]' ({exc}).") from None
    from ..serving import ServerOptions

    if not isinstance(options, ServerOptions):
        raise TypeError("options must be ServerOptions")

    def ready(info: RayServeInfo) -> None:
        where = "a local Ray cluster" if info.local_cluster else f"the Ray cluster at {address}"
        state = "ready" if info.ready else "NOT ready (no model loaded; see the replica logs above)"
        click.echo(f"serving {', '.join(map(str, paths))} on {where}: {info.replicas} replica(s), {state}")
        click.echo(f"listening on {info.url} (Ray Serve's HTTP proxy; no V2 gRPC on Ray); Ctrl-C stops")
        sys.stdout.flush()

    try:
        serve_on_ray(
            [str(p) for p in paths],
            name=name,
            options=options,
            host=host,
            port=port,
            address=address,
            replicas=replicas,
            on_ready=ready,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc)) from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: Ray could not deploy the application
        raise click.ClickException(str(exc)) from None
