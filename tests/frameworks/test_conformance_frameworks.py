"""The conformance suite of ``modelcapsule.testing`` over every framework beyond scikit-learn: each
model saves, reloads with every check on (no drift allowed, golden sample verified) and gives identical
outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris

from modelcapsule.testing import check_round_trip

X, Y = load_iris(return_X_y=True)
SAMPLE = X[::15].astype(np.float32)


def torch_module() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.SiLU(), torch.nn.Linear(5, 3))


def torch_program() -> Any:
    import torch

    return torch.export.export(torch_module(), (torch.from_numpy(SAMPLE),),
                               dynamic_shapes=({0: torch.export.Dim("batch")},))


def keras_model() -> Any:
    from modelcapsule.frameworks.keras import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(2)])


def xgboost_classifier() -> Any:
    import xgboost

    return xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(X, Y)


def xgboost_booster() -> Any:
    import xgboost

    return xgboost.train({"max_depth": 2}, xgboost.DMatrix(X, label=Y), num_boost_round=3)


def lightgbm_regressor() -> Any:
    import lightgbm

    return lightgbm.LGBMRegressor(n_estimators=3, num_leaves=4, verbose=-1).fit(X, Y.astype(float))


def lightgbm_booster() -> Any:
    import lightgbm

    return lightgbm.train({"verbose": -1, "num_leaves": 4}, lightgbm.Dataset(X, label=Y), num_boost_round=3)


def onnx_graph() -> Any:
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=500).fit(X, Y)
    return skl2onnx.convert_sklearn(model, initial_types=[("input", FloatTensorType([None, 4]))],
                                    options={id(model): {"zipmap": False}})


CASES: dict[str, Callable[[], Any]] = {
    "torch-module": torch_module, "torch-export": torch_program, "keras": keras_model,
    "xgboost-classifier": xgboost_classifier, "xgboost-booster": xgboost_booster,
    "lightgbm-regressor": lightgbm_regressor, "lightgbm-booster": lightgbm_booster, "onnx": onnx_graph,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_framework_model_round_trips(case: str, tmp_path: Path) -> None:
    check_round_trip(CASES[case](), SAMPLE, tmp_path / "m.capsule")
