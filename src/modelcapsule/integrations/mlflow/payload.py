"""The model inside an MLflow model directory, loaded only through modelcapsule's restricted readers.

Each supported flavor names a payload file; it is read by the modelcapsule format for that kind of file
(restricted unpickler for ``pickle``/``cloudpickle``, skops' audit for ``skops``, native parsers for
XGBoost, LightGBM and ONNX, PyTorch's safe loader, Keras' safe mode), under modelcapsule's trust policy
plus the importer's ``trusted`` names. MLflow's own loaders are never called: ``mlflow.sklearn.load_model``
unpickles, and its skops path took the trust list from the model itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...audit import audit
from ...core.container import Limits
from ...errors import CapsuleFormatError, UnsupportedModelError, UntrustedCodeError, UntrustedTypesError
from ...formats import LoadOptions, get_format
from ...load import load_capsule
from ...security.policy import TrustPolicy
from .mlmodel import MLModel
from .refusals import MLflowCodeRefusedError, MLflowUntrustedError, carries_code

__all__ = ["FLAVORS", "Payload", "inside", "load_payload"]

FLAVORS = ("sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "keras")
"""Flavors the importer reads, in the order it prefers them when a model has several."""

_TORCH_HINT = (
    "\nA pickled PyTorch module names its classes. Better than trusting them: log the model with "
    "mlflow.pytorch.log_model(..., serialization_format='pt2') (a torch.export program needs no Python "
    "class), or save it with modelcapsule.save(module, 'model.capsule') where its class is importable."
)


@dataclass
class Payload:
    """The loaded model and where it came from inside the MLflow directory."""

    model: Any
    flavor: str
    file: str
    reader: str
    serialization: str | None = None


class _Members:
    """A few in-memory members, for formats whose MLflow file needs a companion record (an XGBoost
    wrapper's class, say); the shape modelcapsule's formats read from."""

    def __init__(self, members: Mapping[str, bytes], limits: Limits) -> None:
        self.limits = limits
        self._members = dict(members)

    def names(self) -> list[str]:
        return list(self._members)

    def __contains__(self, name: str) -> bool:
        return name in self._members

    def read(self, name: str) -> bytes:
        try:
            return self._members[name]
        except KeyError:
            raise CapsuleFormatError(f"no member {name!r}") from None

    def view(self, name: str) -> memoryview:
        return memoryview(self.read(name))

    def size(self, name: str) -> int:
        return len(self.read(name))


def inside(model: MLModel, relative: Any, what: str) -> Path:
    """The payload path named in MLmodel, refused if it leaves the model directory (``..``, absolute, links)."""
    if not isinstance(relative, str) or not relative:
        raise CapsuleFormatError(f"{model.path} names no {what} file.")
    root = model.directory.resolve()
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise CapsuleFormatError(f"{model.path} names {relative!r} as its {what}, outside the model directory; "
                                 "refusing it.")
    if not path.exists():
        raise CapsuleFormatError(f"{model.path} names {relative!r} as its {what}, but the file is missing.")
    return path


def _read_capped(path: Path, limits: Limits) -> bytes:
    size = path.stat().st_size
    if size > limits.max_member_size:
        raise CapsuleFormatError(f"{path.name} is {size:,} bytes, over Limits.max_member_size.")
    return path.read_bytes()


def _through_format(name: str, members: Mapping[str, bytes], details: dict[str, Any], policy: TrustPolicy,
                    what: str) -> Any:
    """Parse → audit → construct with the named modelcapsule format (never a format that runs code)."""
    fmt = get_format(name)
    if fmt.runs_code:
        raise UntrustedCodeError(fmt.name, what)
    source = _Members(members, Limits())
    options = LoadOptions(policy=policy)
    policy.check(fmt.audit(source, details, options), what)
    return fmt.load(source, details, options)


class _CodeFound(Exception):
    """Raised inside this module when an audit finds code stored by value; reported as
    :class:`MLflowCodeRefusedError` with the model's context."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


def _plain(path: Path, policy: TrustPolicy) -> Any:
    """A plain model file (``.pkl``, ``.skops``, ``.onnx``, ``.pth``, ``.pt2``, ``.keras``) via :func:`load_capsule`.

    The file is audited first: a payload that stores code by value is refused *whatever the policy
    admits*, since trusting cloudpickle's function makers would let the file run any code it carries."""
    report = audit(path, trusted=policy)
    if code := carries_code(report.globals):
        raise _CodeFound(sorted({*code, *report.untrusted}))
    return load_capsule(path, trusted=policy, verify=False).model


def _sklearn_like(model: MLModel, flavor: str, conf: dict[str, Any], key: str, policy: TrustPolicy) -> Payload:
    path = inside(model, conf.get(key), "model")
    serialization = str(conf.get("serialization_format") or "cloudpickle")
    if serialization not in ("pickle", "cloudpickle", "skops"):
        raise UnsupportedModelError(f"the {flavor} flavor's serialization_format {serialization!r} is unknown.")
    if flavor == "lightgbm" and path.suffix == ".lgb":
        text = _read_capped(path, Limits())
        obj = _through_format("lightgbm", {"model/model.txt": text}, {"member": "model/model.txt", "kind": "booster"},
                              policy, str(path))
        return Payload(obj, flavor, path.name, "lightgbm")
    expected = ".skops" if serialization == "skops" else ".pkl"
    if path.suffix != expected:
        raise CapsuleFormatError(f"{path.name} does not look like a {serialization} file ({expected} expected).")
    return Payload(_plain(path, policy), flavor, path.name, "skops" if serialization == "skops" else "pickle",
                   serialization)


def _xgboost(model: MLModel, conf: dict[str, Any], policy: TrustPolicy) -> Payload:
    path = inside(model, conf.get("data"), "model")
    member = "model/model.ubj"
    members = {member: _read_capped(path, Limits())}
    model_class = str(conf.get("model_class") or "xgboost.core.Booster")
    details: dict[str, Any] = {"member": member, "kind": "booster"}
    if model_class != "xgboost.core.Booster":
        members["model/params.json"] = json.dumps({"class": model_class, "params": {}}).encode()
        details = {"member": member, "params": "model/params.json", "kind": "wrapper", "class": model_class}
    obj = _through_format("xgboost", members, details, policy, str(path))
    return Payload(obj, "xgboost", path.name, "xgboost", str(conf.get("model_format") or path.suffix.lstrip(".")))


def _pytorch(model: MLModel, conf: dict[str, Any], policy: TrustPolicy) -> Payload:
    data = inside(model, conf.get("model_data") or "data", "model data")
    for name, reader in (("model.pt2", "torchexport"), ("model.pth", "pt")):
        if (data / name).is_file():
            obj = _plain(data / name, policy)
            if isinstance(obj, dict):
                raise UnsupportedModelError(
                    f"{data / name} holds a state dict: weights without the module that uses them. Rebuild the "
                    "module in code, load the state dict into it, and save it with modelcapsule.save(module, ...)."
                )
            return Payload(obj, "pytorch", f"{data.name}/{name}", reader, "pt2" if name.endswith("pt2") else "pickle")
    raise UnsupportedModelError(f"{data} holds neither model.pt2 nor model.pth; a TorchScript or other PyTorch "
                                "payload is not imported.")


def _keras(model: MLModel, conf: dict[str, Any], policy: TrustPolicy) -> Payload:
    if conf.get("save_exported_model"):
        raise UnsupportedModelError("a Keras model saved as a TensorFlow SavedModel (save_exported_model=True) is "
                                    "not imported; log it as a .keras file (the default) instead.")
    data = inside(model, conf.get("data") or "data", "model data")
    path = data / "model.keras"
    if not path.is_file():
        raise UnsupportedModelError(f"{data} holds no model.keras file.")
    return Payload(_plain(path, policy), "keras", f"{data.name}/model.keras", "keras")


def _onnx(model: MLModel, conf: dict[str, Any], policy: TrustPolicy) -> Payload:
    path = inside(model, conf.get("data"), "model")
    return Payload(_plain(path, policy), "onnx", path.name, "onnx")


def pick_flavor(model: MLModel) -> str:
    """The first flavor of :data:`FLAVORS` the model has; a custom pyfunc or other flavor is refused."""
    for flavor in FLAVORS:
        if flavor in model.flavors:
            return flavor
    pyfunc = model.flavors.get("python_function", {})
    if pyfunc.get("loader_module") == "mlflow.pyfunc.model" or "python_model" in pyfunc:
        raise MLflowCodeRefusedError(["mlflow.pyfunc.PythonModel (a custom python_model)"], str(model.directory),
                                     model.ignored_trust_lists())
    raise UnsupportedModelError(
        f"{model.directory} has the flavors {', '.join(sorted(model.flavors)) or 'none'}; modelcapsule imports "
        f"{', '.join(FLAVORS)}. Log the model with one of those flavors, or save it with modelcapsule.save."
    )


def load_payload(model: MLModel, trusted: TrustPolicy) -> Payload:
    """Load the model of ``model``'s preferred flavor under ``trusted`` (the defaults plus the user's names)."""
    flavor = pick_flavor(model)
    conf = model.flavors[flavor]
    ignored = model.ignored_trust_lists()
    named = conf.get("pickled_model") or conf.get("data") or conf.get("model_data") or ""
    payload_file = str(model.directory / str(named))
    try:
        if flavor == "sklearn":
            return _sklearn_like(model, flavor, conf, "pickled_model", trusted)
        if flavor == "lightgbm":
            return _sklearn_like(model, flavor, conf, "data", trusted)
        if flavor == "xgboost":
            return _xgboost(model, conf, trusted)
        if flavor == "pytorch":
            return _pytorch(model, conf, trusted)
        if flavor == "keras":
            return _keras(model, conf, trusted)
        return _onnx(model, conf, trusted)
    except _CodeFound as found:
        raise MLflowCodeRefusedError(found.names, f"the MLflow model's {flavor} payload {payload_file}",
                                     ignored) from None
    except UntrustedCodeError:
        raise
    except UntrustedTypesError as exc:
        code = carries_code(exc.names)
        what = f"the MLflow model's {flavor} payload {payload_file}"
        if code:
            raise MLflowCodeRefusedError(exc.names, what, ignored) from None
        raise MLflowUntrustedError(exc.names, what, ignored, _TORCH_HINT if flavor == "pytorch" else "",
                                   audit_path=payload_file) from None
