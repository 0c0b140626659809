"""Write a Docker build context that serves a capsule with ``capsule serve``.

The context holds four things: ``Dockerfile``, ``requirements.txt`` (the capsule's pins, the same file
``capsule env`` prints), a ``.dockerignore`` that admits only those files, and the capsule itself.
The image starts from ``python:<saved major.minor>-slim``, installs the pins, then modelcapsule with the
pins as constraints (so it cannot move them), runs as a non-root user, and checks
``/v2/health/ready`` as its health check.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .lockfiles import lock_input, render_requirements

__all__ = ["DockerContext", "default_tool_requirement", "render_dockerfile", "write_docker_context"]

HTTP_PORT = 8080
GRPC_PORT = 8081
APP_DIR = "/srv/capsule"
SERVE_EXTRAS = "serve,grpc"


def default_tool_requirement(saved_version: str | None) -> str:
    """The modelcapsule requirement the image installs: the version that saved the capsule, else this one."""
    if saved_version is None:
        try:
            saved_version = version("modelcapsule")
        except PackageNotFoundError:
            return f"modelcapsule[{SERVE_EXTRAS}]"
    return f"modelcapsule[{SERVE_EXTRAS}]=={saved_version}"


@dataclass
class DockerContext:
    """The files of a build context, as text, plus where the capsule goes inside it."""

    dockerfile: str
    requirements: str
    dockerignore: str
    capsule_in_context: str
    """Path of the capsule relative to the context directory (POSIX)."""
    wheel_in_context: str | None = None


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")
    return cleaned or "model"


def render_dockerfile(
    name: str,
    environment: Mapping[str, Any],
    capsule_in_context: str,
    *,
    tool_requirement: str | None = None,
    wheel_in_context: str | None = None,
) -> DockerContext:
    """Render the build context's text files for a capsule whose manifest has ``name`` and ``environment``.

    ``tool_requirement`` overrides how modelcapsule is installed (a requirement string); a wheel file
    copied into the context (``wheel_in_context``) takes precedence over both.
    """
    lock = lock_input(name, environment)
    info = lock.info
    minor = info.python_minor or "3"
    model_path = f"{APP_DIR}/{capsule_in_context}"
    if wheel_in_context is not None:
        install_tool = f"{APP_DIR}/{wheel_in_context}[{SERVE_EXTRAS}]"
        copy_tool = f"COPY {wheel_in_context} {APP_DIR}/{wheel_in_context}\n"
    else:
        install_tool = tool_requirement or default_tool_requirement(info.modelcapsule)
        copy_tool = ""
    health = (
        "import sys, urllib.request; "
        f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{HTTP_PORT}/v2/health/ready', timeout=4)"
        ".status == 200 else 1)"
    )
    tag = _safe_name(name).lower()
    local = [str(p) for p in lock.pins if "+" in p.version]
    local_note = (
        f"# {', '.join(local)}: local version label(s), published on their vendor's own index:\n"
        "#   docker build --build-arg PIP_EXTRA_INDEX_URL=<that index> ...\n"
    ) if local else ""
    entry = ["capsule", "serve"]
    cmd = [model_path, "--host", "0.0.0.0", "--port", str(HTTP_PORT), "--grpc-port", str(GRPC_PORT)]  # noqa: S104
    dockerfile = f"""\
# syntax=docker/dockerfile:1
# Serves capsule {json.dumps(name)} (saved with {info.describe()}) with `capsule serve`.
# Written by `capsule dockerfile`. Build and run:
#   docker build -t {tag} .
#   docker run -p {HTTP_PORT}:{HTTP_PORT} -p {GRPC_PORT}:{GRPC_PORT} {tag}
{local_note}FROM python:{minor}-slim

ARG PIP_EXTRA_INDEX_URL=
ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR {APP_DIR}
COPY requirements.txt {APP_DIR}/requirements.txt
{copy_tool}RUN python -m pip install -r {APP_DIR}/requirements.txt \\
 && python -m pip install {shlex.quote(install_tool)} -c {APP_DIR}/requirements.txt

RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin capsule
COPY {json.dumps([capsule_in_context, model_path])}
USER capsule

EXPOSE {HTTP_PORT} {GRPC_PORT}
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \\
    CMD {json.dumps(["python", "-c", health])}
ENTRYPOINT {json.dumps(entry)}
CMD {json.dumps(cmd)}
"""
    admitted = ["Dockerfile", "requirements.txt", capsule_in_context, f"{capsule_in_context}/**"]
    if wheel_in_context is not None:
        admitted.append(wheel_in_context)
    dockerignore = "# Only what the image needs enters the build context.\n*\n" + "".join(
        f"!{item}\n" for item in admitted
    )
    return DockerContext(
        dockerfile=dockerfile,
        requirements=render_requirements(lock),
        dockerignore=dockerignore,
        capsule_in_context=capsule_in_context,
        wheel_in_context=wheel_in_context,
    )


def write_docker_context(
    capsule: str | os.PathLike[str],
    name: str,
    environment: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    tool_requirement: str | None = None,
    tool_wheel: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> DockerContext:
    """Write ``Dockerfile``, ``requirements.txt``, ``.dockerignore`` and the capsule into ``out_dir``.

    A capsule already inside ``out_dir`` is referenced where it is instead of copied. Existing files are
    kept unless ``overwrite``.
    """
    src = Path(capsule).resolve()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = out.resolve()
    if src.is_relative_to(root):
        rel = src.relative_to(root).as_posix()
        copy_capsule = False
    else:
        rel = f"model/{_safe_name(src.name)}"
        copy_capsule = True
    wheel_rel = None
    if tool_wheel is not None:
        wheel = Path(tool_wheel)
        if not wheel.is_file() or wheel.suffix != ".whl":
            raise FileNotFoundError(f"{wheel} is not a wheel file; build one with `pip wheel --no-deps .`")
        wheel_rel = f"wheels/{wheel.name}"
    context = render_dockerfile(
        name, environment, rel, tool_requirement=tool_requirement, wheel_in_context=wheel_rel
    )
    targets = {"Dockerfile": context.dockerfile, "requirements.txt": context.requirements,
               ".dockerignore": context.dockerignore}
    planned = [out / n for n in targets] + ([out / rel] if copy_capsule else [])
    if not overwrite and (existing := [str(p) for p in planned if os.path.lexists(p)]):
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass --force to replace them.")
    for file_name, text in targets.items():
        (out / file_name).write_text(text, encoding="utf-8")
    if copy_capsule:
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_dir():
            shutil.rmtree(dest)
        if src.is_dir():
            shutil.copytree(src, dest)
        else:
            shutil.copyfile(src, dest)
    if tool_wheel is not None and wheel_rel is not None:
        (out / "wheels").mkdir(exist_ok=True)
        shutil.copyfile(tool_wheel, out / wheel_rel)
    return context
