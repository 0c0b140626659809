"""Serving a capsule's ONNX export: ``load_capsule(path, runtime="onnx" | "auto")``.

``runtime="onnx"`` serves ``onnx/model.onnx`` through onnxruntime, with the capsule's own signature
(inputs and outputs keep their names: the ONNX outputs are renamed to the methods they reproduce);
outputs the export lacks (``decision_function`` beside ``predict_proba``, say) are answered by the Python
model, which ``load_capsule`` has loaded and verified anyway.
``runtime="auto"`` measures both runtimes on the golden sample at load and picks ONNX only when it
reproduces every exported output within :data:`~modelcapsule.onnx.export.TOLERANCE` (no label flips) *and* is
faster; otherwise the Python predictor is kept. The choice is logged on ``modelcapsule.runtime``.

``runtime="onnx"`` on a capsule with an ONNX export never loads the Python model to start: the
members' hashes (and signature) are checked, the golden sample is reproduced by the ONNX session
within tolerance, and the Python model is loaded (with every check) only if a request asks for an
output the export lacks. So a scikit-learn capsule served this way starts without importing
scikit-learn or SciPy (:func:`onnx_only_predictor`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..core.manifest import Manifest
from ..core.sample import model_inputs, read_sample
from ..errors import CapsuleFormatError, UnsupportedModelError
from ..formats.base import LoadOptions
from ..frameworks.onnx import feed_for, onnx_to_numpy
from ..frameworks.predictor import LazyPredictor, MethodPredictor
from ..types import Predictor, Signature
from .export import ONNX_MEMBER, TOLERANCE

__all__ = ["RUNTIMES", "LazyPredictor", "OnnxPredictor", "onnx_only_predictor", "select_predictor"]

RUNTIMES = ("python", "onnx", "auto")
log = logging.getLogger("modelcapsule.runtime")


class OnnxPredictor:
    """The capsule's signature served by an onnxruntime session of its ONNX export."""

    runtime = "onnx"

    def __init__(self, session: Any, signature: Signature, outputs: Mapping[str, str],
                 fallback: Predictor | None = None) -> None:
        self.session = session
        self._signature = signature
        self._to_onnx = {method: out for out, method in outputs.items()}
        self._fallback = fallback
        self._tabular = MethodPredictor(None, signature)
        self.selection: dict[str, Any] = {}

    @property
    def signature(self) -> Signature:
        return self._signature

    def _shaped(self, name: str, value: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Give an ONNX output the dtype and shape the signature promises (float32 → float64 probabilities,
        (N, 1) → (N,) for a regressor, say), so that served answers match the served metadata."""
        spec = next((o for o in self._signature.outputs if o.name == name), None)
        if spec is None:
            return value
        wanted = spec.np_dtype
        if value.dtype != wanted and wanted.kind != "O" and np.can_cast(value.dtype, wanted, "safe"):
            value = value.astype(wanted)
        if value.ndim == len(spec.shape) or not value.shape:
            return value
        rest = [d for d in spec.shape[1:]]
        if all(d > 0 for d in rest) and value.size == value.shape[0] * int(np.prod(rest, dtype=np.int64)):
            return value.reshape(value.shape[0], *rest)
        return value

    def predict(self, inputs: Mapping[str, Any],
                outputs: Sequence[str] | None = None) -> dict[str, np.ndarray[Any, Any]]:
        names = list(outputs) if outputs else list(self._signature.output_names[:1])
        missing = [n for n in names if n not in self._to_onnx]
        if missing and self._fallback is None:
            raise KeyError(f"the ONNX export has no output for {missing}; it gives {sorted(self._to_onnx)}")
        result: dict[str, np.ndarray[Any, Any]] = {}
        exported = [n for n in names if n in self._to_onnx]
        if exported:
            feed = feed_for(self.session, self._tabular.model_input(inputs))
            values = self.session.run([self._to_onnx[n] for n in exported], feed)
            result.update((n, self._shaped(n, onnx_to_numpy(v))) for n, v in zip(exported, values, strict=True))
        if missing and self._fallback is not None:
            result.update(self._fallback.predict(inputs, missing))
        return {n: result[n] for n in names}


def _onnx_predictor(reader: Any, manifest: Manifest, options: LoadOptions, fallback: Predictor) -> OnnxPredictor:
    from ..formats.onnx import checked_session

    section = manifest.onnx or {}
    member = str(section.get("member", ONNX_MEMBER))
    if member not in reader:
        raise UnsupportedModelError(
            f"{reader.path} has no ONNX export; save it with modelcapsule.save(..., onnx=True) to serve it with "
            "runtime='onnx'."
        )
    mapping = section.get("outputs")
    if not isinstance(mapping, dict):
        raise CapsuleFormatError("the manifest's onnx section has no output mapping; the capsule is corrupt.")
    data = reader.read(member)
    session = checked_session(data, options.device, keep_bytes=False)  # served, never saved again from here
    signature = manifest.signature or Signature((), ())
    return OnnxPredictor(session, signature, {str(k): str(v) for k, v in mapping.items()}, fallback)


def _median_seconds(fn: Callable[[], Any], budget: float = 0.2, runs: int = 7) -> float:
    """Median time of ``fn`` over up to ``runs`` calls, stopping once ``budget`` seconds are spent."""
    times: list[float] = []
    deadline = time.perf_counter() + budget
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return float(np.median(times))


def _reproduces(candidate: OnnxPredictor, outputs: Mapping[str, Any], inputs: Mapping[str, Any]) -> str | None:
    """None when every output of the golden sample is reproduced within tolerance; else why not."""
    for method, expected in outputs.items():
        if method not in candidate._to_onnx:
            return f"no ONNX output for {method}"
        got = candidate.predict(inputs, [method])[method]
        exp = np.asarray(expected)
        if got.size != exp.size:
            return f"{method}: shape {got.shape} instead of {exp.shape}"
        got = got.reshape(exp.shape)
        if exp.dtype.kind in "fc":
            if not np.allclose(got.astype(np.float64), exp.astype(np.float64), equal_nan=True, **TOLERANCE):
                return f"{method}: outside rtol={TOLERANCE['rtol']}, atol={TOLERANCE['atol']}"
        elif not np.array_equal(got.astype(object), exp.astype(object)):
            return f"{method}: labels differ"
    return None


def select_predictor(reader: Any, manifest: Manifest, predictor: Predictor, runtime: str,
                     options: LoadOptions) -> Predictor:
    """The predictor for ``runtime``: ``"python"`` (as loaded), ``"onnx"`` or ``"auto"`` (see module doc)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
    if runtime == "python" or manifest.format_name == "onnx":
        return predictor  # an ONNX capsule is already served by onnxruntime
    if runtime == "onnx":
        return _onnx_predictor(reader, manifest, options, predictor)
    if manifest.onnx is None or not manifest.sample:
        return predictor
    candidate = _onnx_predictor(reader, manifest, options, predictor)
    inputs, all_outputs = read_sample(reader, manifest.sample)
    outputs = {m: v for m, v in all_outputs.items() if m in candidate._to_onnx}
    named = inputs if len(inputs) > 1 else {name: model_inputs(inputs) for name in inputs}
    why = _reproduces(candidate, outputs, named) if outputs else "it exports none of the outputs"
    if why is not None:
        log.info("runtime=auto keeps Python for %s: the ONNX export does not reproduce the sample (%s)",
                 manifest.name, why)
        return predictor
    wanted = list(outputs)
    t_python = _median_seconds(lambda: predictor.predict(named, wanted))
    t_onnx = _median_seconds(lambda: candidate.predict(named, wanted))
    candidate.selection = {"python_seconds": t_python, "onnx_seconds": t_onnx}
    chosen = "onnx" if t_onnx < t_python else "python"
    log.info("runtime=auto picks %s for %s (golden sample: python %.2e s, onnx %.2e s)", chosen, manifest.name,
             t_python, t_onnx)
    return candidate if chosen == "onnx" else predictor


def onnx_only_predictor(reader: Any, manifest: Manifest, options: LoadOptions, *, verify: bool,
                        python: Callable[[], Predictor]) -> OnnxPredictor:
    """The capsule served by its ONNX export alone (``runtime="onnx"``), without loading the Python model.
    The loader has checked the signature and every member's hash; here the golden sample's exported outputs
    must be reproduced within tolerance (:class:`~modelcapsule.errors.VerificationError` otherwise).
    ``python()`` loads the Python predictor if an output the export lacks is asked for."""
    from ..errors import VerificationError

    signature = manifest.signature or Signature((), ())
    fallback = LazyPredictor(signature, python, "outputs the ONNX export lacks")
    predictor = _onnx_predictor(reader, manifest, options, fallback)
    if verify and manifest.sample:
        inputs, all_outputs = read_sample(reader, manifest.sample)
        outputs = {m: v for m, v in all_outputs.items() if m in predictor._to_onnx}
        named = inputs if len(inputs) > 1 else {name: model_inputs(inputs) for name in inputs}
        why = _reproduces(predictor, outputs, named)
        if why is not None:
            method, _, detail = why.partition(": ")
            raise VerificationError(method, f"the ONNX export does not reproduce the golden sample ({detail or why})")
    return predictor
