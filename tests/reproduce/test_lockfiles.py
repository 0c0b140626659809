"""The pinned environment as requirements.txt, pylock.toml and environment.yml."""

from __future__ import annotations

import tomllib

import pytest

from modelcapsule.reproduce.lockfiles import RENDERERS, lock_input, render

ENV = {
    "python": "3.11.7",
    "implementation": "CPython",
    "platform": "Linux",
    "machine": "x86_64",
    "requirements": ["scikit-learn==1.9.1", "numpy==2.4.6", "scipy==1.17.1"],
}
LOCK = lock_input('iris "v2"', ENV)


def _body(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_requirements_lists_exactly_the_pins_after_a_header_saying_where_they_come_from() -> None:
    text = render(LOCK, "requirements")
    assert _body(text) == ["numpy==2.4.6", "scikit-learn==1.9.1", "scipy==1.17.1"]
    assert "CPython 3.11.7 on Linux x86_64" in text
    assert "python3.11 -m venv" in text


def test_pylock_is_valid_toml_in_the_pep_751_shape() -> None:
    data = tomllib.loads(render(LOCK, "pylock"))
    assert data["lock-version"] == "1.0"
    assert data["created-by"] == "modelcapsule"
    assert data["requires-python"] == "==3.11.*"
    assert data["environments"] == ["sys_platform == 'linux' and platform_machine == 'x86_64'"]
    assert [(p["name"], p["version"]) for p in data["packages"]] == [
        ("numpy", "2.4.6"),
        ("scikit-learn", "1.9.1"),
        ("scipy", "1.17.1"),
    ]


def test_pylock_leaves_out_what_the_manifest_does_not_know() -> None:
    data = tomllib.loads(render(lock_input("m", {"requirements": ["numpy==2.4.6"]}), "pylock"))
    assert "environments" not in data and "requires-python" not in data
    assert data["packages"] == [{"name": "numpy", "version": "2.4.6"}]


def test_conda_pins_python_and_installs_every_package_through_pip() -> None:
    text = render(LOCK, "conda")
    lines = text.splitlines()
    assert 'name: "iris \\"v2\\""' in lines
    assert "  - python=3.11.7" in lines
    pip_at = lines.index("  - pip:")
    assert lines[pip_at + 1 :] == [
        '      - "numpy==2.4.6"',
        '      - "scikit-learn==1.9.1"',
        '      - "scipy==1.17.1"',
    ]


def test_every_renderer_is_registered_and_unknown_formats_are_named() -> None:
    assert set(RENDERERS) == {"requirements", "pylock", "conda"}
    with pytest.raises(ValueError, match="requirements, pylock, conda"):
        render(LOCK, "poetry")
