"""``capsule kserve CAPSULE --image IMAGE``: write KServe manifests that serve the capsule (DESIGN §11)."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import EXIT_USAGE, emit_json, fail, json_option, reported_errors

__all__ = ["command"]


@click.command("kserve")
@click.argument("capsule", metavar="CAPSULE_OR_URI")
@click.option("--image", required=True, help="Container image with modelcapsule (one built from `capsule dockerfile`).")
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for servingruntime.yaml and inferenceservice.yaml.",
)
@click.option("--name", help="InferenceService name (default: the capsule's name as a DNS label).")
@click.option("--storage-uri", metavar="URI", help="Where KServe fetches the capsule (s3://, gs://, pvc://, https://).")
@click.option(
    "--storage-prefix",
    metavar="URI",
    help="Derive the storage URI as <prefix>/<name>/<capsule file name> (when --storage-uri is not given).",
)
@click.option("--namespace", help="Kubernetes namespace of both objects (default: kubectl's current one).")
@click.option("--runtime-name", default="modelcapsule", show_default=True, help="Name of the ServingRuntime.")
@click.option("--cpu", default="1", show_default=True, help="CPU request (the limit is twice it unless --cpu-limit).")
@click.option("--cpu-limit", help="CPU limit.")
@click.option("--memory", default="1Gi", show_default=True, help="Memory request.")
@click.option("--memory-limit", default="2Gi", show_default=True, help="Memory limit.")
@click.option(
    "--batch-size",
    default=1,
    show_default=True,
    type=click.IntRange(1, 65536),
    help="Adaptive batching in the container (on when > 1).",
)
@click.option("--force", is_flag=True, help="Replace manifests already in the output directory.")
@json_option
def command(
    *,
    capsule: str,
    image: str,
    out_dir: Path,
    name: str | None,
    storage_uri: str | None,
    storage_prefix: str | None,
    namespace: str | None,
    runtime_name: str,
    cpu: str,
    cpu_limit: str | None,
    memory: str,
    memory_limit: str,
    batch_size: int,
    force: bool,
    as_json: bool,
) -> None:
    """Write a KServe ServingRuntime (capsule serve: V2 and V1 REST on 8080, V2 gRPC on 8081, readiness on
    /v2/health/ready) and an InferenceService for CAPSULE_OR_URI, ready for `kubectl apply -f DIR`."""
    from ..integrations.kserve import Resources, target_for, write_manifests

    if not capsule.startswith("models:/") and not Path(capsule).exists():
        fail(f"no capsule at {capsule}", EXIT_USAGE)
    limit = cpu_limit or _double(cpu)
    resources = Resources(cpu_request=cpu, cpu_limit=limit, memory_request=memory, memory_limit=memory_limit)
    with reported_errors():
        try:
            target = target_for(capsule, name=name, storage_uri=storage_uri, storage_prefix=storage_prefix)
        except ValueError as exc:
            fail(str(exc), EXIT_USAGE)
        paths = write_manifests(
            out_dir,
            target,
            image,
            namespace=namespace,
            resources=resources,
            runtime_name=runtime_name,
            batch_size=batch_size,
            overwrite=force,
        )
    if as_json:
        emit_json({"files": [str(p) for p in paths], "name": target.name, "storage_uri": target.storage_uri})
        return
    click.echo(f"Wrote {', '.join(str(p) for p in paths)}")
    click.echo(f"Copy the capsule to {target.storage_uri}, then: kubectl apply -f {out_dir}")


def _double(quantity: str) -> str:
    """Twice a CPU quantity (``1`` → ``2``, ``500m`` → ``1000m``); the quantity itself when not numeric."""
    if quantity.endswith("m") and quantity[:-1].isdigit():
        return f"{2 * int(quantity[:-1])}m"
    try:
        return f"{2 * float(quantity):g}"
    except ValueError:
        return quantity
