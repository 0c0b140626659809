"""A custom Keras layer and activation, registered the way Keras users do (importable by child processes)."""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="mc_test_keras_layers")
class Scale(keras.layers.Layer):
    def __init__(self, factor: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x: Any) -> Any:
        return x * self.factor

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="mc_test_keras_layers")
def half_relu(x: Any) -> Any:
    return keras.ops.relu(x) * 0.5
