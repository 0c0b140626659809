"""``capsule dockerfile PATH``: write a Docker build context that serves the capsule."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import emit_json, json_option, reported_errors

__all__ = ["command"]


@click.command("dockerfile")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="Directory of the build context.")
@click.option("--modelcapsule", "tool_spec", metavar="SPEC",
              help="How the image installs modelcapsule: a requirement (default: the version that saved the "
                   "capsule) or a wheel file, copied into the context.")
@click.option("--force", is_flag=True, help="Replace files already in the output directory.")
@json_option
def command(*, path: Path, out_dir: Path, tool_spec: str | None, force: bool, as_json: bool) -> None:
    """Write Dockerfile, requirements.txt and .dockerignore (and copy the capsule) into a build context.

    The image uses the capsule's Python minor version, installs its pinned packages, runs
    `capsule serve` as a non-root user on ports 8080 (HTTP) and 8081 (gRPC), with a health check on
    /v2/health/ready.
    """
    from ..core.container import open_capsule
    from ..reproduce.docker import write_docker_context

    wheel = Path(tool_spec) if tool_spec and tool_spec.endswith(".whl") else None
    with reported_errors():
        with open_capsule(path) as reader:
            manifest = reader.manifest
        context = write_docker_context(
            path, manifest.name, manifest.environment, out_dir,
            tool_requirement=None if wheel else tool_spec, tool_wheel=wheel, overwrite=force,
        )
    files = ["Dockerfile", "requirements.txt", ".dockerignore", context.capsule_in_context]
    if context.wheel_in_context:
        files.append(context.wheel_in_context)
    if as_json:
        emit_json({"directory": str(out_dir), "files": files})
        return
    click.echo(f"Wrote a build context in {out_dir}: {', '.join(files)}")
    click.echo(f"Build and run it with: docker build -t {manifest.name.lower()} {out_dir}")
