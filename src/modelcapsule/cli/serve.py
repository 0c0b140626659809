"""``capsule serve PATH_OR_REPO…``: serve capsules over every supported protocol (DESIGN §5, §6)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ._registry import CAPSULE_ARGUMENT, served_name

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
@click.argument("paths", nargs=-1, required=True, type=CAPSULE_ARGUMENT)  # paths, or models:/NAME@ALIAS
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
        serve([Path(p) for p in paths], name=name or served_name(paths), settings=settings, options=options,
              on_ready=ready)
    except (ValueError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            str(exc) if "cannot listen" in str(exc) else f"cannot listen on {host}:{port}: {exc}"
        ) from None
