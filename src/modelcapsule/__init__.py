"""modelcapsule: take a trained model from the training script to production, and keep it trustworthy.

>>> import modelcapsule as mc
>>> mc.save(model, "iris.capsule", sample=X_test[:20])          # doctest: +SKIP
>>> model = mc.load("iris.capsule")                              # doctest: +SKIP
"""

from __future__ import annotations

from .advise import Advice, advise
from .audit import AuditReport, audit
from .batch import predict_file
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .convert import convert
from .core.container import Limits
from .core.manifest import CAPSULE_VERSION, Manifest
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
from .load import LoadedCapsule, inspect, load, load_capsule
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

_LAZY = {"Registry": "modelcapsule.registry.service", "import_mlflow": "modelcapsule.integrations.mlflow.importer"}
"""Public names imported on first use: ``mc.Registry`` needs SQLAlchemy and ``mc.import_mlflow`` lives in the
MLflow integration; ``import modelcapsule`` imports neither."""


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from .core.extensions import load_attribute

        value = load_attribute(f"{_LAZY[name]}:{name}")
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modelcapsule' has no attribute {name!r}")
