"""XGBoost: the ``Booster`` and its scikit-learn wrappers (``XGBClassifier``, ``XGBRegressor``, ...).

A bare ``Booster`` predicts with ``inplace_predict`` on the array (no DMatrix)."""

from __future__ import annotations

from typing import Any, ClassVar

from ._boosting import BoostingFramework

__all__ = ["FRAMEWORKS", "XGBoostFramework", "is_booster", "is_wrapper"]


class XGBoostFramework(BoostingFramework):
    """XGBoost boosters and scikit-learn wrappers."""

    name: ClassVar[str] = "xgboost"
    booster: ClassVar[str] = "xgboost.core.Booster"
    wrapper: ClassVar[str] = "xgboost.sklearn.XGBModel"

    def booster_params(self, model: Any) -> dict[str, Any]:
        return {"num_boosted_rounds": int(model.num_boosted_rounds())}

    def booster_predict(self, model: Any, inputs: Any) -> Any:
        return model.inplace_predict(inputs)


FRAMEWORK = XGBoostFramework()
is_booster, is_wrapper = FRAMEWORK.is_booster, FRAMEWORK.is_wrapper
FRAMEWORKS = (FRAMEWORK,)
