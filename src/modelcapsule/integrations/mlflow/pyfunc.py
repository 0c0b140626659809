"""A capsule as an MLflow model: ``save_model`` / ``log_model``, and the ``python_function`` loader.

The MLflow model holds the capsule file unchanged (``data/<name>.capsule``) and a ``python_function``
flavor whose ``loader_module`` is this module. ``mlflow.pyfunc.load_model`` (and ``mlflow models serve``)
call :func:`_load_pyfunc`, which loads the capsule with every modelcapsule check: hashes, the trust
policy, environment drift, the golden sample. The MLflow signature is derived from the capsule's.

Trust at load time comes from the loading side only: the defaults plus the names in the environment
variable ``MODELCAPSULE_TRUST`` (comma or space separated). Nothing written into the MLflow model (its
``model_config`` included, which MLflow merges with the caller's) can widen it.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...core.manifest import Manifest
from ...load import LoadedCapsule, inspect, load_capsule
from ...types import Signature, TensorSpec

__all__ = ["FLAVOR", "TRUST_ENV", "CapsulePyfuncModel", "log_model", "mlflow_signature", "save_model"]

FLAVOR = "modelcapsule"
LOADER_MODULE = __name__
TRUST_ENV = "MODELCAPSULE_TRUST"

_COLUMN_TYPES = {"b": "boolean", "f8": "double", "f4": "float", "f2": "float", "i8": "long", "u8": "long",
                 "u4": "long", "i4": "integer", "i2": "integer", "i1": "integer", "u2": "integer", "u1": "integer"}


def _column_type(dtype: str) -> str:
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        return "string"  # pandas' "category", "string"...
    if np_dtype.kind == "M":
        return "datetime"
    key = "b" if np_dtype.kind == "b" else f"{np_dtype.kind}{np_dtype.itemsize}"
    return _COLUMN_TYPES.get(key, "string")


def _tensor(spec: TensorSpec, named: bool) -> Any:
    from mlflow.types import TensorSpec as MLflowTensorSpec

    dtype = np.dtype("str") if spec.dtype == "object" else np.dtype(spec.dtype)
    return MLflowTensorSpec(dtype, spec.shape, name=spec.name if named else None)


def mlflow_signature(signature: Signature | None) -> Any:
    """The MLflow ``ModelSignature`` for a capsule signature: columns become ``ColSpec``s, arrays
    ``TensorSpec``s; the output is the capsule's primary (first) output. None when there is none."""
    if signature is None or not signature.inputs:
        return None
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    first = signature.inputs[0]
    if len(signature.inputs) == 1 and first.columns:
        inputs = Schema([ColSpec(_column_type(c.dtype), c.name) for c in first.columns])
    else:
        inputs = Schema([_tensor(s, len(signature.inputs) > 1) for s in signature.inputs])
    outputs = Schema([_tensor(signature.outputs[0], False)]) if signature.outputs else None
    names = [o.name for o in signature.outputs]
    if not names:
        return ModelSignature(inputs=inputs, outputs=outputs)
    params = ParamSchema([ParamSpec("outputs", "string", names[:1], (-1,))])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def _modelcapsule_version() -> str:
    """This modelcapsule's version, as installed (the package root is not imported from an integration)."""
    from importlib import metadata

    try:
        return metadata.version("modelcapsule")
    except metadata.PackageNotFoundError:
        return "0"


def _requirements(manifest: Manifest) -> list[str]:
    packages = manifest.environment.get("packages") or {}
    return [f"modelcapsule=={_modelcapsule_version()}", *(f"{n}=={v}" for n, v in sorted(packages.items()))]


def _write(path: str, capsule: Path, mlflow_model: Any, pip_requirements: Iterable[str] | None = None,
           metadata: Mapping[str, Any] | None = None) -> None:
    """Write the MLflow model directory ``path``: the capsule as its data, the modelcapsule flavor, the
    ``python_function`` flavor pointing at this module, the signature and the requirements."""
    import mlflow

    manifest = inspect(capsule)  # a corrupt capsule is refused here, not when someone serves it
    mlflow_model.add_flavor(FLAVOR, capsule=f"data/{capsule.name}", capsule_name=manifest.name,
                            capsule_version=manifest.capsule_version, format=manifest.format_name,
                            modelcapsule_version=_modelcapsule_version())
    with warnings.catch_warnings():  # the capsule's golden sample plays the part of MLflow's input example
        warnings.filterwarnings("ignore", message=".*input example was not provided", category=UserWarning)
        mlflow.pyfunc.save_model(
            path=path, loader_module=LOADER_MODULE, data_path=str(capsule), mlflow_model=mlflow_model,
            signature=mlflow_signature(manifest.signature),
            pip_requirements=list(pip_requirements) if pip_requirements is not None else _requirements(manifest),
            metadata=dict(metadata) if metadata else None,
        )


def save_model(capsule: str | os.PathLike[str], path: str | os.PathLike[str], *,
               pip_requirements: Iterable[str] | None = None, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write an MLflow model directory at ``path`` wrapping ``capsule`` (a ``.capsule`` file or directory).

    The capsule's manifest is read first (a corrupt capsule is refused here, not at serving time). The
    requirements default to modelcapsule and the packages the capsule recorded. Returns ``path``.
    """
    from mlflow.models import Model

    target = Path(path)
    if target.exists():
        raise FileExistsError(f"{target} already exists; MLflow writes a new model directory.")
    _write(str(target), Path(capsule), Model(), pip_requirements, metadata)
    return target


class _Flavor:
    """The flavor object ``Model.log`` calls: it writes the capsule's MLflow model where MLflow asks."""

    def __init__(self, capsule: Path, pip_requirements: Iterable[str] | None) -> None:
        self.capsule, self.pip_requirements = capsule, pip_requirements

    def save_model(self, path: str, mlflow_model: Any, **_ignored: Any) -> None:
        _write(path, self.capsule, mlflow_model, self.pip_requirements)


def log_model(capsule: str | os.PathLike[str], name: str = "model", *, registered_model_name: str | None = None,
              pip_requirements: Iterable[str] | None = None, metadata: Mapping[str, Any] | None = None) -> Any:
    """Log ``capsule`` as an MLflow model named ``name`` in the active run (one is started if none is) and,
    with ``registered_model_name``, register it in MLflow's registry. Returns MLflow's ``ModelInfo``."""
    from mlflow.models import Model

    return Model.log(artifact_path=None, name=name, flavor=_Flavor(Path(capsule), pip_requirements),
                     registered_model_name=registered_model_name, metadata=dict(metadata) if metadata else None)


def _trusted_from_environment() -> list[str]:
    raw = os.environ.get(TRUST_ENV, "")
    return [n for n in re.split(r"[\s,]+", raw) if n]


class CapsulePyfuncModel:
    """What ``mlflow.pyfunc.load_model`` wraps: a capsule loaded with every check, called by name.

    ``predict`` takes what MLflow hands over (a DataFrame, an array, a dict of named arrays) and returns the
    capsule's primary output; ``params={"outputs": ["predict_proba"]}`` asks for other outputs (a dict
    of arrays when more than one)."""

    def __init__(self, loaded: LoadedCapsule) -> None:
        self.loaded = loaded

    def _inputs(self, model_input: Any) -> dict[str, Any]:
        specs = self.loaded.predictor.signature.inputs
        if isinstance(model_input, Mapping):
            return {str(k): np.asarray(v) for k, v in model_input.items()}
        name = specs[0].name if specs else "input"
        if hasattr(model_input, "to_numpy") and specs and specs[0].columns is None:
            model_input = model_input.to_numpy()
        return {name: model_input}

    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> Any:
        outputs = (params or {}).get("outputs")
        wanted = [outputs] if isinstance(outputs, str) else list(outputs) if outputs else None
        result = self.loaded.predictor.predict(self._inputs(model_input), wanted)
        if len(result) == 1:
            return next(iter(result.values()))
        return result

    def get_raw_model(self) -> Any:
        """The model object inside the capsule."""
        return self.loaded.model


def _load_pyfunc(data_path: str, model_config: Mapping[str, Any] | None = None) -> CapsulePyfuncModel:
    """MLflow's entry point: load the capsule at ``data_path`` with every modelcapsule check.

    ``model_config`` is deliberately not consulted for trust: MLflow merges the config saved inside the
    model with the caller's, so a name there could come from the file itself."""
    return CapsulePyfuncModel(load_capsule(data_path, trusted=_trusted_from_environment()))
