"""modelcapsule: take a trained model from the training script to production, and keep it trustworthy.

>>> import modelcapsule as mc
>>> mc.save(model, "iris.capsule", sample=X_test[:20])          # doctest: +SKIP
>>> model = mc.load("iris.capsule")                              # doctest: +SKIP

Every public name but the exceptions is imported on first use: ``import modelcapsule`` (and so every
``capsule`` command, ``capsule serve`` included) loads only what it then calls, not every verb's modules.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING

from .errors import (
    CapsuleError,
    CapsuleFormatError,
    EnvironmentMismatchError,
    EnvironmentMismatchWarning,
    IntegrityError,
    LimitExceededError,
    SignatureError,
    UnsupportedModelError,
    UntrustedCodeError,
    UntrustedTypesError,
    VerificationError,
)

if TYPE_CHECKING:
    from .advise import Advice, advise
    from .audit import AuditReport, audit
    from .batch import predict_file
    from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
    from .convert import convert
    from .core.container import Limits
    from .core.manifest import CAPSULE_VERSION, Manifest
    from .load import LoadedCapsule, inspect, load, load_capsule
    from .registry.service import Registry
    from .save import save
    from .security.policy import TrustPolicy
    from .types import Predictor, Signature, TensorSpec
    from .verify import VerificationReport, verify

__all__ = [
    "CAPSULE_VERSION",
    "Advice",
    "AuditReport",
    "CapsuleError",
    "CapsuleFormatError",
    "Checkpoint",
    "EnvironmentMismatchError",
    "EnvironmentMismatchWarning",
    "IntegrityError",
    "LimitExceededError",
    "Limits",
    "LoadedCapsule",
    "Manifest",
    "Predictor",
    "Registry",
    "Signature",
    "SignatureError",
    "TensorSpec",
    "TrustPolicy",
    "UnsupportedModelError",
    "UntrustedCodeError",
    "UntrustedTypesError",
    "VerificationError",
    "VerificationReport",
    "advise",
    "audit",
    "convert",
    "inspect",
    "load",
    "load_capsule",
    "load_checkpoint",
    "predict_file",
    "save",
    "save_checkpoint",
    "verify",
]

__version__ = "0.1.0"

_LAZY = {
    "Advice": "modelcapsule.advise", "advise": "modelcapsule.advise",
    "AuditReport": "modelcapsule.audit", "audit": "modelcapsule.audit",
    "predict_file": "modelcapsule.batch",
    "Checkpoint": "modelcapsule.checkpoint", "load_checkpoint": "modelcapsule.checkpoint",
    "save_checkpoint": "modelcapsule.checkpoint",
    "convert": "modelcapsule.convert",
    "Limits": "modelcapsule.core.container",
    "CAPSULE_VERSION": "modelcapsule.core.manifest", "Manifest": "modelcapsule.core.manifest",
    "LoadedCapsule": "modelcapsule.load", "inspect": "modelcapsule.load", "load": "modelcapsule.load",
    "load_capsule": "modelcapsule.load",
    "save": "modelcapsule.save",
    "TrustPolicy": "modelcapsule.security.policy",
    "Predictor": "modelcapsule.types", "Signature": "modelcapsule.types", "TensorSpec": "modelcapsule.types",
    "VerificationReport": "modelcapsule.verify", "verify": "modelcapsule.verify",
    "Registry": "modelcapsule.registry.service",  # needs SQLAlchemy
    "import_mlflow": "modelcapsule.integrations.mlflow.importer",  # the MLflow integration
}
"""Public name → the module that defines it, imported on first use."""

_VERBS = frozenset({"advise", "audit", "convert", "load", "save", "verify"})
"""Public functions named like the module that defines them."""


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from .core.extensions import load_attribute

        value = load_attribute(f"{_LAZY[name]}:{name}")
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modelcapsule' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


class _Package(ModuleType):
    """Importing the submodule ``modelcapsule.load`` binds it on the package as ``load``, over the function
    of that name (the same for the other verbs): the binding is turned into the function, so ``mc.load``
    stays the function whichever module imported ``modelcapsule.load`` first. The module itself is
    ``sys.modules["modelcapsule.load"]``."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _VERBS and isinstance(value, ModuleType) and value.__name__ == f"{__name__}.{name}":
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
