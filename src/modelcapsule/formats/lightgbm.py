"""``lightgbm``: LightGBM's own text model file, for the ``Booster`` and the scikit-learn wrappers.

Members: ``model/model.txt`` (``Booster.model_to_string()``) and, for a wrapper, ``model/params.json``:
its class, ``get_params()`` (see :mod:`modelcapsule.formats._params`) and the fitted state LightGBM keeps
beside the booster (classes, objective, best iteration). LightGBM has no public way to attach a booster
to a wrapper, so the wrapper is rebuilt by setting the attributes ``fit`` sets (``_Booster``,
``_classes``, ``_n_classes``, ``_le``, ``_objective``, ``fitted_``...) for LightGBM 4; the golden sample
checks the result on every load. The wrapper classes of ``lightgbm.sklearn`` are this format's own
vocabulary; a subclass (``mypkg.MyLGBM``) must be admitted by the trust policy. A plain model file loads
as a ``Booster``.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

import numpy as np

from ..errors import CapsuleFormatError, UnsupportedModelError
from ..frameworks.lightgbm import is_booster, is_wrapper
from ._members import main_member, read_json
from ._params import decode_params, encode_params
from ._wrappers import PARAMS, audit_wrapper, wrapper_class
from .base import LoadOptions, MemberSink, MemberSource, SaveResult

__all__ = ["FORMATS", "LightGBMFormat"]

MEMBER = "model/model.txt"
BUILTIN = frozenset(f"lightgbm.sklearn.{n}" for n in ("LGBMModel", "LGBMClassifier", "LGBMRegressor", "LGBMRanker"))


def _fitted_state(model: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "objective": model._objective if isinstance(model._objective, str) else None,
        "best_iteration": int(model._best_iteration),
        "fitted_with_feature_names": bool(getattr(model, "_fitted_with_feature_names", False)),
        "n_features_in": int(model._n_features_in),
    }
    if callable(model._objective):
        raise UnsupportedModelError("a LightGBM model trained with a custom objective function needs its code to "
                                    "predict; it cannot be stored as data. Save it with a pickle-based format.")
    classes = getattr(model, "_classes", None)
    if classes is not None:
        array = np.asarray(classes)
        if array.dtype.kind not in "biufU":
            raise UnsupportedModelError(f"class labels of dtype {array.dtype} cannot be stored as JSON")
        state["classes"] = {"values": array.tolist(), "dtype": array.dtype.str}
    return state


class LightGBMFormat:
    """LightGBM boosters and wrappers as native text plus JSON parameters."""

    name: ClassVar[str] = "lightgbm"
    runs_code: ClassVar[bool] = False
    safety: ClassVar[int] = 5
    extensions: ClassVar[tuple[str, ...]] = ()

    def supports(self, model: Any) -> bool:
        return is_booster(model) or is_wrapper(model)

    def save(self, model: Any, sink: MemberSink) -> SaveResult:
        if is_booster(model):
            sink.add(MEMBER, model.model_to_string().encode())
            return SaveResult(details={"member": MEMBER, "kind": "booster"}, types=["lightgbm.basic.Booster"])
        if not is_wrapper(model):
            raise UnsupportedModelError(f"the lightgbm format stores LightGBM models, not {type(model)}")
        cls = type(model)
        class_name = f"{cls.__module__}.{cls.__qualname__}"
        doc = {"class": class_name, "params": encode_params(model.get_params(deep=False), cls.__name__),
               "fitted": _fitted_state(model)}
        sink.add(MEMBER, model.booster_.model_to_string().encode())
        sink.add(PARAMS, json.dumps(doc, allow_nan=False).encode())
        return SaveResult(details={"member": MEMBER, "params": PARAMS, "kind": "wrapper", "class": class_name},
                          types=[class_name])

    def audit(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> list[str]:
        return audit_wrapper(source, details, "LightGBM", BUILTIN)

    def load(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> Any:
        import lightgbm

        try:
            text = source.read(main_member(source, details, MEMBER)).decode()
            booster = lightgbm.Booster(model_str=text)
        except (UnicodeDecodeError, lightgbm.basic.LightGBMError) as exc:
            raise CapsuleFormatError(f"LightGBM could not parse the model file: {exc}") from exc
        params_name = str(details.get("params", PARAMS))
        if params_name not in source:
            return booster
        doc = read_json(source, params_name)
        if not isinstance(doc, dict) or not isinstance(doc.get("fitted"), dict):
            raise CapsuleFormatError(f"{params_name} is incomplete; the capsule is corrupt.")
        check_fitted(doc["fitted"], params_name)
        cls = wrapper_class(doc, options, "LightGBM", BUILTIN, lightgbm.LGBMModel)
        try:
            return _restore(cls(**decode_params(doc.get("params", {}))), booster, doc["fitted"])
        except (TypeError, ValueError, KeyError) as exc:
            raise CapsuleFormatError(f"{params_name} does not describe a LightGBM model this version can rebuild "
                                     f"({type(exc).__name__}: {str(exc)[:200]}).") from exc


MAX_CLASSES = 1_000_000
_CLASS_DTYPES = re.compile(r"[<>|=]?(b1|[iu][1248]|f[248]|U[0-9]{1,6})")


def check_fitted(fitted: dict[str, Any], where: str) -> None:
    """Refuse a ``fitted`` section that is not what :func:`_fitted_state` writes: the objective a name, the
    counts integers in range, the classes a list of plain labels with a plain dtype."""

    def bad(what: str) -> CapsuleFormatError:
        return CapsuleFormatError(f"{where}: 'fitted' {what}; the capsule is corrupt or hostile.")

    if extra := sorted(set(fitted) - {"objective", "best_iteration", "fitted_with_feature_names",
                                      "n_features_in", "classes"}):
        raise bad(f"has unknown field(s) {[k[:40] for k in extra[:5]]}")
    objective = fitted.get("objective")
    if objective is not None and (not isinstance(objective, str) or len(objective) > 128):
        raise bad("'objective' should be a name")
    for key, low in (("best_iteration", -1), ("n_features_in", 0)):
        value = fitted.get(key, low)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value < 1 << 31:
            raise bad(f"{key!r} should be an integer >= {low}")
    if not isinstance(fitted.get("fitted_with_feature_names", False), bool):
        raise bad("'fitted_with_feature_names' should be true or false")
    classes = fitted.get("classes")
    if classes is None:
        return
    if not isinstance(classes, dict) or not isinstance(classes.get("dtype"), str) or not isinstance(
            classes.get("values"), list):
        raise bad("'classes' should hold 'values' and 'dtype'")
    if not _CLASS_DTYPES.fullmatch(classes["dtype"]):
        raise bad(f"class labels of dtype {classes['dtype'][:20]!r} are not allowed")
    values = classes["values"]
    if len(values) > MAX_CLASSES or not all(isinstance(v, (bool, int, float, str)) for v in values):
        raise bad("'classes.values' should be a list of plain labels")
    try:
        np.asarray(values, dtype=np.dtype(classes["dtype"]))
    except (TypeError, ValueError, OverflowError) as exc:
        raise bad(f"class labels do not fit their dtype ({type(exc).__name__})") from exc


def _restore(model: Any, booster: Any, fitted: dict[str, Any]) -> Any:
    """Give a fresh wrapper the fitted state ``fit`` would have set (LightGBM 4.x attribute names)."""
    from lightgbm.compat import _LGBMLabelEncoder

    model._Booster = booster
    model._n_features = booster.num_feature()
    model._n_features_in = int(fitted.get("n_features_in", booster.num_feature()))
    model._objective = fitted.get("objective")
    model._best_iteration = int(fitted.get("best_iteration", -1))
    model._best_score = {}
    model._evals_result = {}
    model._fitted_with_feature_names = bool(fitted.get("fitted_with_feature_names", False))
    classes = fitted.get("classes")
    if classes is not None:
        dtype = np.dtype(str(classes["dtype"]))
        if dtype.kind not in "biufU":
            raise CapsuleFormatError(f"class labels of dtype {dtype} are not allowed; the capsule is corrupt.")
        values = np.asarray(classes["values"], dtype=dtype)
        model._le = _LGBMLabelEncoder().fit(values)
        model._classes = model._le.classes_
        model._n_classes = len(values)
        model._class_map = dict(zip(model._le.classes_, model._le.transform(model._le.classes_), strict=True))
    model.fitted_ = True
    return model


FORMATS = (LightGBMFormat(),)
