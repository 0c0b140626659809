"""The golden sample: inputs and the outputs they gave at save time, and the one loop that records and
compares them (used by save, load, verify, advise, testing and reproduce).

The sample is data from the capsule, so it is never allowed to choose *what* runs. A method is called
only if the framework that recognises the loaded object itself (never the manifest's word for it)
declares it as a prediction method of that object, and its name is public, not a dunder and not one of
the names that change an object or touch files (``fit``, ``tofile``, ``set_params``...). The inputs must
be plain arrays (numbers, booleans, text; see :mod:`modelcapsule.core.sample_files`) that match the
signature the manifest declares. Error messages quote values only as short, escaped excerpts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CapsuleFormatError
from ..types import ColumnSpec, Signature, TensorSpec
from .sample_files import check_sample_section, plain, read_sample, write_sample

__all__ = [
    "DEFAULT_INPUT", "MethodCheck", "check_inputs", "check_methods", "check_sample_section", "compare_outputs",
    "compare_sample", "excerpt", "infer_signature", "model_inputs", "normalize_inputs", "plain", "read_sample",
    "record_outputs", "to_numpy", "write_sample",
]

DEFAULT_INPUT = "input"

EXCERPT_CHARS = 120
"""Longest quotation of a value (an input, an output, an exception text) in an error message."""

_PUBLIC_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
MUTATING_NAMES = frozenset({
    "fit", "fit_transform", "fit_predict", "partial_fit", "set_params", "set_output", "set_fit_request",
    "tofile", "dump", "dumps", "save", "save_model", "save_weights", "load", "load_model", "load_state_dict",
    "train", "compile", "build", "update", "clear", "pop", "popitem", "setdefault", "put", "write", "delete",
    "register_buffer", "register_parameter", "apply", "requires_grad_", "zero_grad", "cuda", "to", "cpu",
})
"""Names that are never run from a sample, whatever a framework declares: they change the object or
write somewhere. (The built-in frameworks declare none of them; this guards plug-ins too.)"""


def excerpt(value: Any, limit: int = EXCERPT_CHARS, *, text: bool = False) -> str:
    """A short, printable quotation of ``value`` (its ``repr``, or the string itself with ``text=True``):
    non-ASCII and control characters escaped, cut at ``limit``."""
    try:
        shown = value if text and isinstance(value, str) else repr(value)
    except Exception:  # a hostile __repr__ must not decide what the message says
        shown = f"<{type(value).__name__}>"
    shown = shown.encode("ascii", "backslashreplace").decode("ascii")
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in shown)
    return shown if len(shown) <= limit else shown[:limit] + f"… ({len(shown) - limit} more characters)"


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of an exception, quoted as an excerpt (it may carry input data)."""
    try:
        message = str(exc)
    except Exception:
        message = ""
    return f"{type(exc).__name__}: {excerpt(message, text=True)}"


# ------------------------------------------------------------------------------------------ values


def _is_dataframe(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "columns") and hasattr(obj, "dtypes")


def normalize_inputs(sample: Any) -> dict[str, Any]:
    """``{name: array or DataFrame}`` from what the user passed (one array, a DataFrame, a list, a dict)."""
    if isinstance(sample, Mapping):
        return {str(k): v if _is_dataframe(v) else np.asarray(v) for k, v in sample.items()}
    if _is_dataframe(sample):
        return {DEFAULT_INPUT: sample}
    return {DEFAULT_INPUT: np.asarray(sample)}


def model_inputs(inputs: Mapping[str, Any]) -> Any:
    """What to hand the model: the single input itself, or the mapping for multi-input models."""
    if list(inputs) == [DEFAULT_INPUT]:
        return inputs[DEFAULT_INPUT]
    return dict(inputs)


def to_numpy(value: Any) -> np.ndarray[Any, Any]:
    """A dense numpy array from a model output (sparse matrices, pandas objects, lists, tensors)."""
    if hasattr(value, "toarray") and callable(value.toarray):
        value = value.toarray()
    elif hasattr(value, "to_numpy") and callable(value.to_numpy):
        value = value.to_numpy()
    elif type(value).__module__.startswith("torch"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


# ------------------------------------------------------------------------------------------ signature


def _tensor_spec(name: str, value: Any) -> TensorSpec:
    if _is_dataframe(value):
        columns = tuple(ColumnSpec(str(c), str(value[c].dtype)) for c in value.columns)
        kinds = {c.dtype for c in columns}
        common = kinds.pop() if len(kinds) == 1 else "object"
        try:
            np.dtype(common)
        except TypeError:
            common = "object"
        return TensorSpec(name, common, (-1, len(columns)), columns)
    array = to_numpy(value)
    dtype = "object" if array.dtype.kind in "OU" else str(array.dtype)
    return TensorSpec(name, dtype, (-1, *array.shape[1:]))


def infer_signature(inputs: Mapping[str, Any], outputs: Mapping[str, Any], classes: Any = None) -> Signature:
    """The signature implied by the sample: first dimension free, the rest as seen."""
    return Signature(
        inputs=tuple(_tensor_spec(n, v) for n, v in inputs.items()),
        outputs=tuple(_tensor_spec(m, v) for m, v in outputs.items()),
        classes=None if classes is None else tuple(plain(classes)),
    )


def _shape_fits(shape: tuple[int, ...], spec: TensorSpec) -> bool:
    if len(shape) != len(spec.shape):
        return False
    return all(want < 0 or want == got for want, got in zip(spec.shape[1:], shape[1:], strict=True))


def _dtype_fits(dtype: np.dtype[Any], declared: str) -> bool:
    if declared == "object":
        return dtype.kind in "OUS"
    try:
        return dtype == np.dtype(declared)
    except TypeError:
        return False


def check_inputs(inputs: Mapping[str, Any], signature: Signature | None) -> None:
    """Refuse sample inputs that are not what the manifest's signature declares (names, shapes, dtypes)."""
    if signature is None or not signature.inputs:
        return
    declared = [s.name for s in signature.inputs]
    if sorted(inputs) != sorted(declared):
        raise CapsuleFormatError(
            f"the golden sample's inputs {excerpt(sorted(inputs))} are not the signature's {excerpt(declared)}; "
            "the manifest is inconsistent."
        )
    for spec in signature.inputs:
        value = inputs[spec.name]
        if _is_dataframe(value):
            if spec.columns is None or [str(c) for c in value.columns] != [c.name for c in spec.columns]:
                raise CapsuleFormatError(f"golden-sample input {excerpt(spec.name)} has columns the signature "
                                         "does not declare.")
            continue
        if spec.columns is not None:
            raise CapsuleFormatError(f"golden-sample input {excerpt(spec.name)} should be a table.")
        array = np.asarray(value) if not isinstance(value, list) else None
        if array is None:  # JSON records: one per row
            if len(spec.shape) != 1 or spec.dtype != "object":
                raise CapsuleFormatError(f"golden-sample input {excerpt(spec.name)} does not fit its signature.")
            continue
        if not _shape_fits(array.shape, spec) or not _dtype_fits(array.dtype, spec.dtype):
            raise CapsuleFormatError(
                f"golden-sample input {excerpt(spec.name)} is {array.dtype} {array.shape}, but the signature "
                f"declares {excerpt(spec.dtype)} {spec.shape}; the manifest is inconsistent."
            )


# ------------------------------------------------------------------------------------------ methods


def check_methods(framework: Any, model: Any, methods: Iterable[str], what: str = "the golden sample") -> None:
    """Refuse any name in ``methods`` that ``framework`` does not declare as a prediction method of this
    very object, or that is private, a dunder or a mutating name (see the module docstring)."""
    declared = set(framework.methods(model))
    by_output = bool(getattr(framework, "methods_are_outputs", False))  # ONNX: output names, not attributes
    for method in methods:
        if not isinstance(method, str):
            raise CapsuleFormatError(f"{what} names a method that is not a string.")
        safe_name = by_output or (_PUBLIC_NAME.fullmatch(method) is not None and method not in MUTATING_NAMES)
        if method not in declared or not safe_name:
            cls = type(model)
            raise CapsuleFormatError(
                f"{what} asks to run {excerpt(method)}, which is not a declared prediction method of "
                f"{cls.__module__}.{cls.__qualname__} (it has {sorted(declared)}). The manifest is corrupt or "
                "hostile; nothing was run."
            )


# ------------------------------------------------------------------------------------------ comparison


def compare_outputs(expected: np.ndarray[Any, Any], actual: Any, *, exact: bool = False,
                    rtol: float = 1e-7, atol: float = 1e-10) -> str | None:
    """None when ``actual`` reproduces ``expected``; otherwise a description of the first differing rows
    (values quoted as short excerpts)."""
    expected = np.asarray(expected)
    try:
        got = to_numpy(actual)
    except (TypeError, ValueError) as exc:
        return f"the output is not an array ({describe_error(exc)})"
    if got.shape != expected.shape:
        return f"shape {got.shape} instead of {expected.shape}"
    try:
        if expected.dtype.kind in "fc" and got.dtype.kind in "fc" and not exact:
            same = np.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
        elif expected.dtype.kind in "fc" and got.dtype.kind in "fc":
            same = (got == expected) | (np.isnan(got) & np.isnan(expected))
        else:
            same = np.asarray(got.astype(object) == expected.astype(object), dtype=bool)
            if same.shape != expected.shape:
                same = np.broadcast_to(same, expected.shape)
    except (TypeError, ValueError) as exc:
        return f"the values cannot be compared ({describe_error(exc)})"
    if same.all():
        return None
    if expected.ndim == 0:
        return f"expected {excerpt(expected.item())}, got {excerpt(got.item())}"
    rows = np.flatnonzero(~same.reshape(same.shape[0], -1).all(axis=1))
    lines = [f"{len(rows)} of {len(expected)} row(s) differ; first ones:"]
    for r in rows[:5]:
        lines.append(f"  row {r}: expected {excerpt(expected[r], 60)}, got {excerpt(got[r], 60)}")
    return "\n".join(lines)


@dataclass(frozen=True)
class MethodCheck:
    """One method of the golden sample re-run: the difference found (None: reproduced) and the exception
    the call raised, if it did."""

    method: str
    difference: str | None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.difference is None


def record_outputs(framework: Any, model: Any, inputs: Mapping[str, Any],
                   methods: Iterable[str] | None = None) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, str]]:
    """Run each declared prediction method (or each of ``methods`` that is declared) on ``inputs``.

    Returns ``(outputs by method, why each other method was skipped)``: a method the model cannot run on
    this sample is skipped, not fatal."""
    declared = list(framework.methods(model))
    wanted = declared if methods is None else list(methods)
    args = model_inputs(inputs)
    outputs: dict[str, np.ndarray[Any, Any]] = {}
    skipped: dict[str, str] = {}
    for method in wanted:
        if method not in declared:
            skipped[method] = "the model has no such prediction method"
            continue
        try:
            outputs[method] = to_numpy(framework.call(model, method, args))
        except Exception as exc:
            skipped[method] = describe_error(exc)
    return outputs, skipped


def compare_sample(framework: Any, model: Any, inputs: Mapping[str, Any],
                   expected: Mapping[str, np.ndarray[Any, Any]], *, exact: bool = False) -> list[MethodCheck]:
    """Re-run every method in ``expected`` on ``inputs`` and compare; methods are checked first with
    :func:`check_methods`, so a hostile name raises before anything runs."""
    check_methods(framework, model, expected)
    args = model_inputs(inputs)
    results: list[MethodCheck] = []
    for method, want in expected.items():
        try:
            got = framework.call(model, method, args)
        except Exception as exc:
            results.append(MethodCheck(method, f"calling it raised {describe_error(exc)}", exc))
            continue
        results.append(MethodCheck(method, compare_outputs(want, got, exact=exact)))
    return results


def verify_capsule_sample(source: Any, section: Any, signature: Signature | None, framework: Any, model: Any,
                          *, exact: bool = False) -> list[MethodCheck]:
    """The golden sample of a capsule, re-run on its loaded model: the section and members are checked
    (:func:`read_sample`), the inputs against ``signature``, the methods against the object's framework."""
    inputs, outputs = read_sample(source, section)
    check_methods(framework, model, outputs)  # before the inputs are even looked at
    check_inputs(inputs, signature)
    return compare_sample(framework, model, inputs, outputs, exact=exact)
