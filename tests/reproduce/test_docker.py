"""The Docker build context: base image from the saved Python, pins, non-root user, serve, healthcheck."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from modelcapsule.reproduce.docker import render_dockerfile, write_docker_context

ENV = {
    "python": "3.12.4",
    "implementation": "CPython",
    "platform": "Linux",
    "machine": "aarch64",
    "requirements": ["scikit-learn==1.9.1", "numpy==2.4.6", "modelcapsule==0.1.0"],
}


def _instruction(dockerfile: str, keyword: str) -> list[str]:
    return [line[len(keyword) + 1 :] for line in dockerfile.splitlines() if line.startswith(keyword + " ")]


def test_the_base_image_matches_the_saved_python_minor_version() -> None:
    context = render_dockerfile("fraud", ENV, "model/fraud.capsule")
    assert _instruction(context.dockerfile, "FROM") == ["python:3.12-slim"]
    assert "CPython 3.12.4 on Linux aarch64" in context.dockerfile


def test_modelcapsule_is_installed_at_the_saving_version_without_moving_the_pins() -> None:
    dockerfile = render_dockerfile("fraud", ENV, "model/fraud.capsule").dockerfile
    assert "pip install -r /srv/capsule/requirements.txt" in dockerfile
    assert "pip install 'modelcapsule[serve,grpc]==0.1.0' -c /srv/capsule/requirements.txt" in dockerfile


def test_the_image_serves_as_a_non_root_user_with_a_readiness_healthcheck() -> None:
    dockerfile = render_dockerfile("fraud", ENV, "model/fraud.capsule").dockerfile
    lines = dockerfile.splitlines()
    user_at = lines.index("USER capsule")
    assert any("useradd" in line for line in lines[:user_at])
    assert lines.index('ENTRYPOINT ["capsule", "serve"]') > user_at
    cmd = json.loads(_instruction(dockerfile, "CMD")[0])
    assert cmd[0] == "/srv/capsule/model/fraud.capsule"
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert _instruction(dockerfile, "EXPOSE") == ["8080 8081"]
    health = dockerfile[dockerfile.index("HEALTHCHECK") :]
    assert "http://127.0.0.1:8080/v2/health/ready" in health


def test_the_dockerignore_admits_only_what_the_image_needs() -> None:
    ignore = render_dockerfile("fraud", ENV, "model/fraud.capsule").dockerignore
    rules = [line for line in ignore.splitlines() if not line.startswith("#")]
    assert rules[0] == "*"
    assert set(rules[1:]) == {
        "!Dockerfile",
        "!requirements.txt",
        "!model/fraud.capsule",
        "!model/fraud.capsule/**",
    }


def test_a_wheel_replaces_the_requirement_and_is_copied_in() -> None:
    context = render_dockerfile(
        "fraud", ENV, "model/fraud.capsule", wheel_in_context="wheels/modelcapsule-0.1.0-py3-none-any.whl"
    )
    assert "COPY wheels/modelcapsule-0.1.0-py3-none-any.whl" in context.dockerfile
    assert "'/srv/capsule/wheels/modelcapsule-0.1.0-py3-none-any.whl[serve,grpc]'" in context.dockerfile
    assert "!wheels/modelcapsule-0.1.0-py3-none-any.whl" in context.dockerignore


def test_odd_capsule_names_cannot_break_out_of_the_dockerfile() -> None:
    dockerfile = render_dockerfile('x"\nRUN rm -rf /', ENV, "model/x.capsule").dockerfile
    assert not any(line.startswith("RUN rm") for line in dockerfile.splitlines())


def test_write_docker_context_refuses_to_replace_files_unless_forced(tmp_path: Path) -> None:
    capsule = tmp_path / "src" / "fraud.capsule"
    capsule.parent.mkdir()
    capsule.write_bytes(b"capsule bytes")
    out = tmp_path / "ctx"
    write_docker_context(capsule, "fraud", ENV, out)
    assert (out / "model" / "fraud.capsule").read_bytes() == b"capsule bytes"
    with pytest.raises(FileExistsError, match="--force"):
        write_docker_context(capsule, "fraud", ENV, out)
    write_docker_context(capsule, "fraud", ENV, out, overwrite=True)


def test_a_capsule_already_in_the_context_is_used_where_it_is(tmp_path: Path) -> None:
    capsule = tmp_path / "models" / "fraud.capsule"
    capsule.parent.mkdir()
    capsule.write_bytes(b"capsule bytes")
    context = write_docker_context(capsule, "fraud", ENV, tmp_path)
    assert context.capsule_in_context == "models/fraud.capsule"
    assert re.search(r'^COPY \["models/fraud.capsule", ', context.dockerfile, re.M)


def test_local_version_labels_get_a_note_on_where_they_come_from() -> None:
    plain = render_dockerfile("fraud", ENV, "model/fraud.capsule").dockerfile
    assert "PIP_EXTRA_INDEX_URL=<" not in plain
    env = {**ENV, "requirements": [*ENV["requirements"], "torch==2.13.0+cpu"]}
    noted = render_dockerfile("fraud", env, "model/fraud.capsule").dockerfile
    assert "# torch==2.13.0+cpu: local version label(s)" in noted
    assert "--build-arg PIP_EXTRA_INDEX_URL=<that index>" in noted
