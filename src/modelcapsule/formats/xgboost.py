"""``xgboost``: XGBoost's own UBJSON model file, for the ``Booster`` and the scikit-learn wrappers.

Members: ``model/model.ubj`` (``Booster.save_raw("ubj")``) and, for a wrapper, ``model/params.json``
(its class and ``get_params()``, see :mod:`modelcapsule.formats._params`). Loading parses data only:
the wrapper is rebuilt as ``cls(**params)`` and given the booster with ``load_model``, which restores
the number of classes and the objective as XGBoost itself does. The wrapper classes of ``xgboost.sklearn``
are this format's own vocabulary; a subclass of them (``mypkg.MyXGB``) must be admitted by the trust
policy. Plain ``*.ubj`` / ``*.xgb`` model files (UBJSON or JSON) load as a ``Booster``.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from ..errors import CapsuleFormatError, UnsupportedModelError
from ..frameworks.xgboost import is_booster, is_wrapper
from ._members import main_member, read_json
from ._params import decode_params, encode_params
from ._wrappers import PARAMS, audit_wrapper, wrapper_class
from .base import LoadOptions, MemberSink, MemberSource, SaveResult

__all__ = ["FORMATS", "XGBoostFormat"]

MEMBER = "model/model.ubj"
BUILTIN = frozenset(f"xgboost.sklearn.{n}" for n in (
    "XGBModel", "XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor"))


class XGBoostFormat:
    """XGBoost boosters and wrappers as native UBJSON plus JSON parameters."""

    name: ClassVar[str] = "xgboost"
    runs_code: ClassVar[bool] = False
    safety: ClassVar[int] = 5
    extensions: ClassVar[tuple[str, ...]] = (".ubj", ".xgb")

    def supports(self, model: Any) -> bool:
        return is_booster(model) or is_wrapper(model)

    def save(self, model: Any, sink: MemberSink) -> SaveResult:
        if is_booster(model):
            sink.add(MEMBER, bytes(model.save_raw(raw_format="ubj")))
            return SaveResult(details={"member": MEMBER, "kind": "booster"}, types=["xgboost.core.Booster"])
        if not is_wrapper(model):
            raise UnsupportedModelError(f"the xgboost format stores XGBoost models, not {type(model)}")
        cls = type(model)
        class_name = f"{cls.__module__}.{cls.__qualname__}"
        params = encode_params(model.get_params(deep=False), cls.__name__)
        booster = model.get_booster()
        booster.set_attr(scikit_learn=json.dumps({"_estimator_type": model._get_type()}))
        try:
            raw = bytes(booster.save_raw(raw_format="ubj"))
        finally:
            booster.set_attr(scikit_learn=None)
        sink.add(MEMBER, raw)
        sink.add(PARAMS, json.dumps({"class": class_name, "params": params}, allow_nan=False).encode())
        return SaveResult(details={"member": MEMBER, "params": PARAMS, "kind": "wrapper", "class": class_name},
                          types=[class_name])

    def audit(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> list[str]:
        return audit_wrapper(source, details, "XGBoost", BUILTIN)

    def load(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> Any:
        import xgboost

        raw = bytearray(source.read(main_member(source, details, MEMBER)))
        params_name = str(details.get("params", PARAMS))
        if params_name not in source:
            booster = xgboost.Booster()
            try:
                booster.load_model(raw)
            except xgboost.core.XGBoostError as exc:
                raise CapsuleFormatError(f"XGBoost could not parse the model file: {exc}") from exc
            return booster
        doc = read_json(source, params_name)
        if not isinstance(doc, dict):
            raise CapsuleFormatError(f"{params_name} is not a JSON object; the capsule is corrupt.")
        cls = wrapper_class(doc, options, "XGBoost", BUILTIN, xgboost.XGBModel)
        params = decode_params(doc.get("params", {}))
        model = cls(**params)
        try:
            model.load_model(raw)
        except xgboost.core.XGBoostError as exc:
            raise CapsuleFormatError(f"XGBoost could not parse the model file: {exc}") from exc
        for key in ("objective", "booster", "base_score", "feature_types", "enable_categorical"):
            if key in params:  # load_model overwrites these from the booster; keep the user's values
                setattr(model, key, params[key])
        return model


FORMATS = (XGBoostFormat(),)
