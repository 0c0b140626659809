"""LightGBM: the ``Booster`` and its scikit-learn wrappers (``LGBMClassifier``, ``LGBMRegressor``, ...)."""

from __future__ import annotations

from typing import Any, ClassVar

from ._boosting import BoostingFramework

__all__ = ["FRAMEWORKS", "LightGBMFramework", "is_booster", "is_wrapper"]


class LightGBMFramework(BoostingFramework):
    """LightGBM boosters and scikit-learn wrappers."""

    name: ClassVar[str] = "lightgbm"
    booster: ClassVar[str] = "lightgbm.basic.Booster"
    wrapper: ClassVar[str] = "lightgbm.sklearn.LGBMModel"

    def booster_params(self, model: Any) -> dict[str, Any]:
        return {"num_trees": int(model.num_trees())}


FRAMEWORK = LightGBMFramework()
is_booster, is_wrapper = FRAMEWORK.is_booster, FRAMEWORK.is_wrapper
FRAMEWORKS = (FRAMEWORK,)
