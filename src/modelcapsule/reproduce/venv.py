"""Re-create a capsule's environment as a virtual environment, and prove it by loading the capsule in it.

Four steps, each in a child process so nothing leaks from the running interpreter:

0. ``pip install --dry-run`` of the pins with the chosen interpreter, so a pin that cannot be had fails
   in seconds, before anything is built;
1. ``python -m venv DIR``;
2. ``pip install`` the capsule's exact pins, then modelcapsule itself with those pins as constraints (so
   installing the tool can never move a pinned version); when pip cannot have a pin, every unavailable
   pin is found (pip stops at the first) and named in one :class:`EnvironmentBuildError`;
3. inside the new interpreter, ``modelcapsule.load(path, on_mismatch="error", verify=True)``: this
   refuses any version drift and re-runs the golden sample, so success means the environment is the
   saved one *and* the model reproduces its recorded outputs there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any, NoReturn

from packaging.requirements import InvalidRequirement, Requirement

from ..errors import CapsuleError
from .pins import TOOL_PACKAGES, Pin, normalize_name

__all__ = [
    "EnvironmentBuildError",
    "VenvReport",
    "build_venv",
    "default_tool_spec",
    "python_mismatch",
    "tool_constraints",
]

Progress = Callable[[str], None]

_NOT_FOUND = re.compile(r"No matching distribution found for (\S+)")
_CONFLICT = re.compile(r"Cannot install (.+?) because these package versions have conflicting dependencies")
_NOISE = re.compile(r"^WARNING: Location '.*' is ignored")

_PROOF = r"""
import json, sys
from importlib.metadata import PackageNotFoundError, version
import modelcapsule as mc
from modelcapsule.load import load_capsule
path, names = sys.argv[1], sys.argv[2:]
loaded = load_capsule(path, on_mismatch="error", verify=True)
def installed(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return None
print(json.dumps({
    "modelcapsule": mc.__file__,
    "model": type(loaded.model).__module__ + "." + type(loaded.model).__qualname__,
    "versions": {name: installed(name) for name in names},
}))
"""


class EnvironmentBuildError(CapsuleError, RuntimeError):
    """The capsule's environment could not be re-created (a pin cannot be had, or the capsule fails there)."""

    def __init__(self, message: str, *, unavailable: Sequence[str] = (), output: str = "") -> None:
        self.unavailable = list(unavailable)
        self.output = output
        super().__init__(message)


@dataclass
class VenvReport:
    """What :func:`build_venv` made and proved."""

    path: Path
    python: Path
    pins: list[Pin]
    versions: dict[str, str | None]
    """Each pin's version as installed in the new environment (all equal to the pins on success)."""
    modelcapsule: str
    """Where the new environment imports modelcapsule from (inside the venv, not this checkout)."""
    model: str
    """The class of the model loaded and verified inside the venv."""
    seconds: float
    warnings: list[str] = field(default_factory=list)


def _clean_env() -> dict[str, str]:
    """This process's environment minus what would make the child import from outside its venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONUSERBASE"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(cmd: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, env=_clean_env(), timeout=timeout,
                          check=False)


def _tail(text: str, lines: int = 25) -> str:
    kept = [line for line in text.splitlines() if line.strip() and not _NOISE.match(line)]
    return "\n".join(kept[-lines:])


def default_tool_spec() -> str:
    """How to install modelcapsule into the new environment: this checkout when running from one (found
    next to the imported package), else the same released version."""
    root = Path(__file__).resolve().parents[3]  # <root>/src/modelcapsule/reproduce/venv.py
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "modelcapsule"' in pyproject.read_text(encoding="utf-8"):
        return str(root)
    try:
        return f"modelcapsule=={distribution('modelcapsule').version}"
    except PackageNotFoundError:
        return "modelcapsule"


def tool_constraints(exclude: Iterable[str] = ()) -> list[str]:
    """``name==version`` for modelcapsule's installed runtime dependencies (transitively, no extras).

    They pin the tool's own dependencies in the new environment to the versions this one runs with, so
    the venv is built from known-good versions (and from the local cache) rather than whatever is newest.
    """
    skip = {normalize_name(n) for n in exclude} | set(TOOL_PACKAGES)
    found: dict[str, str] = {}
    stack = ["modelcapsule"]
    visited: set[str] = set()
    while stack:
        name = normalize_name(stack.pop())
        if name in visited:
            continue
        visited.add(name)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        if name not in skip:
            found[name] = dist.version
        for raw in dist.requires or []:
            try:
                req = Requirement(raw)
            except InvalidRequirement:
                continue
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                stack.append(req.name)
    return [f"{name}=={version}" for name, version in sorted(found.items())]


def _find_unavailable(pip: list[str], pins: list[Pin], first_output: str, timeout: float) -> list[str]:
    """Every pin pip cannot have. pip reports only the first; probe the rest with dry runs (no install)."""
    unavailable: list[str] = []
    remaining = list(pins)

    def blame(output: str) -> list[Pin]:
        names: list[str] = _NOT_FOUND.findall(output)
        for group in _CONFLICT.findall(output):
            names += [part.strip() for part in re.split(r",| and ", group) if part.strip()]
        hits = []
        for text in names:
            key = normalize_name(re.split(r"[=<>!~ ]", text, maxsplit=1)[0])
            hits += [p for p in remaining if p.key == key]
        return hits

    output = first_output
    for _ in range(len(pins) + 1):
        hits = blame(output)
        if not hits:
            break
        for pin in hits:
            unavailable.append(str(pin))
            remaining.remove(pin)
        if not remaining:
            break
        probe = _run([*pip, "install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet",
                      *map(str, remaining)], timeout)
        if probe.returncode == 0:
            break
        output = probe.stdout + probe.stderr
    return unavailable


def build_venv(
    capsule: str | os.PathLike[str],
    target: str | os.PathLike[str],
    pins: list[Pin],
    *,
    python: str = sys.executable,
    tool_spec: str | None = None,
    saved_python: str | None = None,
    progress: Progress | None = None,
    timeout: float = 1800.0,
) -> VenvReport:
    """Create a venv at ``target`` with exactly ``pins`` plus modelcapsule, then load and verify
    ``capsule`` inside it. Raises :class:`EnvironmentBuildError` (and removes the half-made venv) on failure.
    """
    start = time.monotonic()
    say = progress or (lambda _msg: None)
    venv_dir = Path(target)
    if venv_dir.exists() and (not venv_dir.is_dir() or any(venv_dir.iterdir())):
        raise FileExistsError(f"{venv_dir} already exists and is not empty; choose a new directory.")
    if shutil.which(python) is None:
        raise FileNotFoundError(f"no Python interpreter at {python!r}; pass --python with an executable.")
    warnings: list[str] = []
    _preflight(python, pins, timeout, say)
    made = not venv_dir.exists()
    try:
        venv_python = _create(venv_dir, python, timeout, say)
        if (mismatch := python_mismatch(saved_python, _python_minor(venv_python, timeout))) is not None:
            warnings.append(mismatch)
        pip = [str(venv_python), "-m", "pip"]
        _install_pins(venv_dir, pip, pins, timeout, say)
        _install_tool(venv_dir, pip, pins, tool_spec or default_tool_spec(), timeout=timeout, say=say)
        say("loading and verifying the capsule inside the new environment")
        proof = _prove(venv_python, capsule, pins, timeout)
    except BaseException:
        if made:
            shutil.rmtree(venv_dir, ignore_errors=True)
        raise
    versions = {str(k): (None if v is None else str(v)) for k, v in proof["versions"].items()}
    wrong = [f"{p.name} {versions.get(p.name)} (wanted {p.version})" for p in pins
             if versions.get(p.name) != p.version]
    if wrong:
        raise EnvironmentBuildError(
            "the new environment does not hold the pinned versions: " + "; ".join(wrong),
            output=json.dumps(proof),
        )
    return VenvReport(path=venv_dir, python=venv_python, pins=pins, versions=versions,
                      modelcapsule=str(proof["modelcapsule"]), model=str(proof["model"]),
                      seconds=time.monotonic() - start, warnings=warnings)


def python_mismatch(saved: str | None, here: str) -> str | None:
    """A warning when the venv's Python (``"3.12"``) is not the minor version the capsule was saved with."""
    if not saved or saved.split(".")[:2] == here.split(".")[:2]:
        return None
    return (f"the capsule was saved with Python {saved}; this venv runs Python {here}. Pass --python with a "
            "matching interpreter for an exact re-creation.")


def _create(venv_dir: Path, python: str, timeout: float, say: Progress) -> Path:
    say(f"creating a virtual environment in {venv_dir}")
    done = _run([python, "-m", "venv", str(venv_dir)], timeout)
    if done.returncode != 0:
        raise EnvironmentBuildError(f"`{python} -m venv {venv_dir}` failed:\n{_tail(done.stderr)}",
                                    output=done.stderr)
    scripts = "Scripts" if os.name == "nt" else "bin"
    exe = venv_dir / scripts / ("python.exe" if os.name == "nt" else "python")
    if not exe.exists():
        raise EnvironmentBuildError(f"the new environment has no interpreter at {exe}.")
    return exe


def _python_minor(exe: Path, timeout: float) -> str:
    done = _run([str(exe), "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], timeout)
    return done.stdout.strip()


def _preflight(python: str, pins: list[Pin], timeout: float, say: Progress) -> None:
    """Resolve the pins without installing anything (``pip install --dry-run``), before building a venv,
    so a pin that cannot be had fails in seconds. Skipped when ``python`` has no pip of its own."""
    pip = [python, "-m", "pip"]
    if _run([*pip, "--version"], timeout).returncode != 0:
        return
    say(f"checking that the {len(pins)} pinned packages can be had")
    with tempfile.TemporaryDirectory(prefix="capsule-env-") as tmp:
        req_file = Path(tmp) / "capsule-requirements.txt"
        req_file.write_text("".join(f"{p}\n" for p in pins), encoding="utf-8")
        done = _run([*pip, "install", "--dry-run", "--ignore-installed", "--no-input", "--quiet",
                     "-r", str(req_file)], timeout)
    if done.returncode != 0:
        _fail_pins(pip, pins, done.stdout + done.stderr, timeout, say)


def _install_pins(venv_dir: Path, pip: list[str], pins: list[Pin], timeout: float, say: Progress) -> None:
    req_file = venv_dir / "capsule-requirements.txt"
    req_file.write_text("".join(f"{p}\n" for p in pins), encoding="utf-8")
    say(f"installing {len(pins)} pinned packages")
    done = _run([*pip, "install", "--no-input", "--no-compile", "-r", str(req_file)], timeout)
    if done.returncode != 0:
        _fail_pins(pip, pins, done.stdout + done.stderr, timeout, say)


def _fail_pins(pip: list[str], pins: list[Pin], output: str, timeout: float, say: Progress) -> NoReturn:
    """Raise the error for a failed install of the pins, naming every pin that cannot be had."""
    say("pip failed; finding every pin that cannot be had")
    unavailable = _find_unavailable(pip, pins, output, timeout)
    if unavailable:
        listed = "\n".join(f"  - {u}" for u in unavailable)
        message = (f"{len(unavailable)} pinned version(s) cannot be installed from the configured package "
                   f"index(es):\n{listed}\nInstall them from where they came (an extra index, e.g. "
                   "PIP_EXTRA_INDEX_URL, or a wheel house with PIP_FIND_LINKS), or re-train the model in an "
                   "environment whose versions are available (`capsule retrain`).")
    else:
        message = f"pip could not install the capsule's pinned packages:\n{_tail(output)}"
    raise EnvironmentBuildError(message, unavailable=unavailable, output=output)


def _install_tool(venv_dir: Path, pip: list[str], pins: list[Pin], spec: str, *, timeout: float,
                  say: Progress) -> None:
    constraints = venv_dir / "modelcapsule-constraints.txt"
    constraints.write_text("".join(f"{c}\n" for c in tool_constraints(p.key for p in pins)), encoding="utf-8")
    say(f"installing modelcapsule ({spec})")
    pinned = venv_dir / "capsule-requirements.txt"
    done = _run([*pip, "install", "--no-input", "--no-compile", spec, "-c", str(pinned),
                 "-c", str(constraints)], timeout)
    if done.returncode != 0:
        raise EnvironmentBuildError(
            f"modelcapsule ({spec}) could not be installed beside the capsule's pins:\n"
            f"{_tail(done.stdout + done.stderr)}\nPass --modelcapsule with a compatible version or a wheel.",
            output=done.stdout + done.stderr,
        )


def _prove(venv_python: Path, capsule: str | os.PathLike[str], pins: list[Pin],
           timeout: float) -> dict[str, Any]:
    capsule_path = str(Path(capsule).resolve())
    done = _run([str(venv_python), "-I", "-c", _PROOF, capsule_path, *(p.name for p in pins)], timeout)
    if done.returncode != 0:
        raise EnvironmentBuildError(
            "the environment was built, but the capsule does not load and verify inside it:\n"
            f"{_tail(done.stderr)}",
            output=done.stderr,
        )
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise EnvironmentBuildError(f"the check inside the new environment printed no result:\n{done.stdout}",
                                    output=done.stdout) from None
    if not isinstance(result, dict):
        raise EnvironmentBuildError("the check inside the new environment printed an unexpected result.")
    return result
