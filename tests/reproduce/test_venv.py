"""Pieces of the venv builder that need no venv (the build itself is in test_cli_env)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from modelcapsule.reproduce.pins import parse_pin
from modelcapsule.reproduce.venv import default_tool_spec, python_mismatch, tool_constraints


def test_a_different_python_minor_version_is_warned_about() -> None:
    assert python_mismatch("3.11.7", "3.11") is None
    assert python_mismatch(None, "3.12") is None
    warning = python_mismatch("3.11.7", "3.12")
    assert warning is not None and "3.11.7" in warning and "--python" in warning


def test_the_tool_constraints_pin_modelcapsules_own_dependencies_as_installed_here() -> None:
    constraints = dict(line.split("==") for line in tool_constraints())
    assert constraints["click"] == version("click")
    assert constraints["rich"] == version("rich")
    assert "modelcapsule" not in constraints


def test_the_capsules_pins_win_over_the_tool_constraints() -> None:
    pinned = [parse_pin("numpy==2.4.6"), parse_pin("scikit-learn==1.9.1")]
    names = {line.split("==")[0] for line in tool_constraints(p.key for p in pinned)}
    assert not names & {"numpy", "scikit-learn"}


def test_from_a_checkout_modelcapsule_is_installed_from_that_checkout() -> None:
    assert Path(default_tool_spec()) == Path(__file__).resolve().parents[2]
