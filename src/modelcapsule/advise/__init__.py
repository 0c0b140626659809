"""``advise``: try every format on a model and measure, instead of guessing.

For each format (safepickle, skops, pickle, joblib, joblib compressed, cloudpickle, and onnx when that
format is registered) the model is serialised here (timed), written as a small capsule with the golden
sample, and loaded back in a *fresh* Python process per format, which times the load and checks that the
reloaded model reproduces the sample exactly. The table answers scikit-learn's persistence questions
(do you need the Python object? do you trust the source? do you care about load speed and sharing
between processes? does the model hold custom code?) with numbers, and one sentence recommends a format.

Everything is bounded: each child process has a timeout and the whole run a time budget.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.container import CapsuleWriter
from ..core.manifest import Manifest
from ..core.members import MemoryMembers
from ..core.sample import normalize_inputs, record_outputs, write_sample
from ..errors import CapsuleError, UnsupportedModelError
from ..formats import Format, LoadOptions, get_format
from ..formats.joblib import CompressedJoblibFormat
from ..frameworks import framework_for
from ..security.policy import TrustPolicy

__all__ = ["Advice", "FormatTrial", "advise", "default_sample"]

CANDIDATES: tuple[tuple[str, str], ...] = (
    ("safepickle", "safepickle"),
    ("skops", "skops"),
    ("pickle", "pickle"),
    ("joblib", "joblib"),
    ("joblib (zlib 3)", "joblib-compressed"),
    ("cloudpickle", "cloudpickle"),
    ("onnx", "onnx"),
)
"""(label, format) pairs tried in this order; ``joblib-compressed`` is joblib written with compress=3."""

_CHILD = "modelcapsule.advise.child"


@dataclass
class FormatTrial:
    """One format measured on the model. Times are seconds; ``load_seconds`` comes from a fresh process."""

    label: str
    format: str
    safe: bool = False
    safety: str = ""
    exact: bool | None = None
    size: int | None = None
    save_seconds: float | None = None
    load_seconds: float | None = None
    error: str | None = None
    detail: str = ""
    load_pid: int | None = None

    @property
    def usable(self) -> bool:
        return self.error is None and self.exact is not False and self.load_seconds is not None


@dataclass
class Advice:
    """Every trial, and the one-sentence recommendation drawn from them."""

    trials: list[FormatTrial] = field(default_factory=list)
    recommendation: str = ""
    sample_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "trials": [asdict(t) for t in self.trials],
            "recommendation": self.recommendation,
            "sample_rows": self.sample_rows,
        }


def default_sample(model: Any, rows: int = 20) -> Any:
    """A small numeric sample for a model that records how many features it was fitted on, else None."""
    n = getattr(model, "n_features_in_", None)
    if not isinstance(n, (int, np.integer)):
        return None
    data = np.random.default_rng(0).normal(size=(rows, int(n)))
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        import pandas as pd

        return pd.DataFrame(data, columns=[str(c) for c in names])
    return data


def _format(name: str) -> Format:
    if name == "joblib-compressed":
        return CompressedJoblibFormat()
    return get_format(name)


def _safety(
    fmt: Format, members: MemoryMembers, details: dict[str, Any], policy: TrustPolicy
) -> tuple[bool, str]:
    if fmt.runs_code:
        return False, "no: runs code (trust_code)"
    names = fmt.audit(members, details, LoadOptions(policy=policy))
    untrusted = policy.untrusted(names)
    if untrusted:
        return False, "only with trusted=[" + ", ".join(repr(n) for n in untrusted) + "]"
    return True, "yes"


def _write_trial(
    path: Path,
    *,
    model: Any,
    framework: Any,
    fmt: Format,
    members: MemoryMembers,
    details: dict[str, Any],
    inputs: Mapping[str, Any] | None,
    outputs: Mapping[str, Any],
) -> None:
    manifest = Manifest(
        name="advise",
        created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        model=framework.describe(model),
        format={"name": fmt.name, **details},
        files={},
        signature=None,
        environment={},
    )
    with CapsuleWriter(path, layout="zip", overwrite=True) as writer:
        for member, data in members.members.items():
            writer.add(member, data)
        if inputs is not None and outputs:
            manifest.sample = write_sample(writer, inputs, outputs)
        writer.finish(manifest)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _load_in_fresh_process(
    path: Path, trusted: list[str], trust_code: bool, timeout: float
) -> dict[str, Any]:
    cmd = [sys.executable, "-m", _CHILD, str(path), json.dumps(trusted), "1" if trust_code else "0"]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=_child_env(), check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"loading took longer than {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"the fresh process failed: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _trial(
    label: str,
    name: str,
    *,
    model: Any,
    framework: Any,
    policy: TrustPolicy,
    trusted: list[str],
    inputs: Mapping[str, Any] | None,
    outputs: Mapping[str, Any],
    workdir: Path,
    timeout: float,
) -> FormatTrial:
    trial = FormatTrial(label, name)
    try:
        fmt = _format(name)
    except UnsupportedModelError:
        trial.error = "format not registered"
        return trial
    if not fmt.supports(model):
        trial.error = "does not support this model"
        return trial
    members = MemoryMembers()
    start = time.perf_counter()
    try:
        result = fmt.save(model, members)
    except Exception as exc:
        trial.error = f"cannot save: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return trial
    trial.save_seconds = time.perf_counter() - start
    trial.size = sum(v.nbytes for v in members.members.values())
    try:
        trial.safe, trial.safety = _safety(fmt, members, result.details, policy)
    except CapsuleError as exc:
        trial.error = f"cannot audit: {exc}"
        return trial
    needs = (
        []
        if trial.safe or fmt.runs_code
        else policy.untrusted(fmt.audit(members, result.details, LoadOptions(policy=policy)))
    )
    path = workdir / f"{name}.capsule"
    _write_trial(path, model=model, framework=framework, fmt=fmt, members=members, details=result.details,
                 inputs=inputs, outputs=outputs)
    child = _load_in_fresh_process(path, [*trusted, *needs], fmt.runs_code, timeout)
    if "error" in child:
        trial.error = str(child["error"])
        return trial
    trial.load_seconds = float(child["load_seconds"])
    trial.exact = child.get("exact")
    trial.detail = str(child.get("detail") or "")
    trial.load_pid = child.get("pid")
    return trial


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.0f} ms"


def recommend(trials: Iterable[FormatTrial]) -> str:
    """One sentence, answering the persistence guide's questions from the measurements."""
    trials = list(trials)
    by = {t.format: t for t in trials}
    safe = sorted(
        (t for t in trials if t.safe and t.usable and t.format != "onnx"), key=lambda t: t.load_seconds or 0.0
    )
    onnx = by.get("onnx")
    onnx_clause = ""
    if onnx is not None and onnx.usable and onnx.exact:
        onnx_clause = (
            f"; if you only need predictions and not the Python object, the ONNX export also reproduces "
            f"the sample and loads in {_seconds(onnx.load_seconds)} without scikit-learn"
        )
    if safe:
        best = safe[0]
        sharing = (
            ", and its arrays are memory-mapped so worker processes share them"
            if best.format == "safepickle"
            else ""
        )
        compare = ", ".join(f"{t.label} {_seconds(t.load_seconds)}" for t in safe[1:3])
        return (
            f"Use {best.label}: it loads without running code from the file (every import checked against "
            f"the trust policy), reproduces the sample exactly, and loaded in {_seconds(best.load_seconds)} "
            f"in a fresh process{' (vs ' + compare + ')' if compare else ''}{sharing}{onnx_clause}."
        )
    gated = [t for t in trials if t.usable and not t.safe and "trusted=" in t.safety]
    if gated:
        t = min(gated, key=lambda t: t.load_seconds or 0.0)
        return (
            f"Use {t.label} {t.safety}, after reviewing those names with `capsule audit`: the model holds "
            f"types outside the default trust policy, so only a source you trust should be loaded"
            f"{onnx_clause}."
        )
    code = by.get("cloudpickle")
    if code is not None and code.usable:
        return (
            "The model holds custom code (a lambda or an interactively defined function) that only "
            "cloudpickle can store, and loading it runs that code: move the function into an importable "
            "module and re-fit, or use cloudpickle with trust_code=True only for sources you trust."
        )
    return "No format reproduced this model; see the errors in the table."


def advise(
    model: Any,
    sample: Any = None,
    *,
    trusted: Iterable[str] = (),
    formats: Iterable[str] | None = None,
    timeout: float = 120.0,
    budget: float = 600.0,
    progress: Callable[[str, int, int], None] | None = None,
) -> Advice:
    """Measure every format on ``model`` and recommend one.

    ``sample`` (rows of input) is used for the exact round-trip check; without one, a random numeric
    sample is made when the model records ``n_features_in_``. ``formats`` restricts the formats tried
    (names from :data:`CANDIDATES`). ``timeout`` bounds each fresh-process load, ``budget`` the whole
    run (formats not reached in time are reported as skipped). ``progress(label, done, total)`` is called
    before each format.
    """
    framework = framework_for(model)
    trusted = list(trusted)
    policy = TrustPolicy(trusted)
    if sample is None:
        sample = default_sample(model)
    inputs = normalize_inputs(sample) if sample is not None else None
    outputs: dict[str, Any] = {}
    if inputs is not None:
        outputs, _skipped = record_outputs(framework, model, inputs)  # a method unusable here is not compared
    wanted = list(formats) if formats is not None else None
    candidates = [(label, name) for label, name in CANDIDATES if wanted is None or name in wanted]
    advice = Advice(sample_rows=len(next(iter(inputs.values()))) if inputs else 0)
    deadline = time.monotonic() + budget
    with tempfile.TemporaryDirectory(prefix="capsule-advise-") as tmp:
        for i, (label, name) in enumerate(candidates):
            if progress is not None:
                progress(label, i, len(candidates))
            if time.monotonic() > deadline:
                advice.trials.append(
                    FormatTrial(label, name, error=f"skipped: the {budget:.0f} s budget ran out")
                )
                continue
            remaining = max(1.0, min(timeout, deadline - time.monotonic()))
            advice.trials.append(
                _trial(label, name, model=model, framework=framework, policy=policy, trusted=trusted,
                       inputs=inputs, outputs=outputs, workdir=Path(tmp), timeout=remaining)
            )
    if progress is not None:
        progress("done", len(candidates), len(candidates))
    if inputs is None:
        for t in advice.trials:
            t.exact = None
    advice.recommendation = recommend(advice.trials)
    return advice
