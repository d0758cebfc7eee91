"""Feature standardisation that leaves constant features alone, as scikit-learn's does."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="kfuse")
class Standardization(keras.layers.Layer):
    """(x - mean) / std per feature, with std taken as 1 where a feature is constant.

    `keras.layers.Normalization` divides by max(std, 1e-7): a feature that is constant on
    the rows it was adapted on (common for MiniRocket's PPV features on a few dozen
    training series) is multiplied by 1e7 wherever it differs at test time, and one such
    feature can swamp a linear head. This layer scales it as scikit-learn's
    `StandardScaler` does (by 1), so it only shifts. State: non-trainable `mean`, `scale`.

    Example:

    ```python
    import numpy as np
    from kfuse.features import Standardization

    x = np.array([[0.0, 1.0], [2.0, 1.0]], "float32")  # the second feature is constant
    layer = Standardization()
    layer.adapt(x)
    assert np.allclose(np.asarray(layer(np.array([[1.0, 3.0]], "float32"))), [[0.0, 2.0]])
    ```
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.trainable = False

    def build(self, input_shape):
        width = input_shape[-1]
        if width is None:
            raise ValueError(f"Standardization '{self.name}' needs a known last axis; received {input_shape}")
        self.mean = self.add_weight(name="mean", shape=(width,), initializer="zeros", trainable=False)
        self.scale = self.add_weight(name="scale", shape=(width,), initializer="ones", trainable=False)

    def adapt(self, data, batch_size=None):
        """Set the mean and scale from `data`, (n, features), n >= 1, finite."""
        x = np.asarray(data, dtype="float64")
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(
                f"Standardization '{self.name}': adapt() takes (n, features) rows, n >= 1; "
                f"received shape {x.shape}"
            )
        if not np.all(np.isfinite(x)):
            row = int(np.argwhere(~np.isfinite(x).all(1))[0, 0])
            raise ValueError(f"Standardization '{self.name}': adapt() received a non-finite value in row {row}")
        if not self.built:
            self.build(x.shape)
        std = x.std(axis=0)
        self.mean.assign(x.mean(axis=0).astype("float32"))
        self.scale.assign(np.where(std > 0, std, 1.0).astype("float32"))

    def call(self, x):
        return (ops.cast(x, "float32") - self.mean) / self.scale

    def compute_output_shape(self, input_shape):
        return input_shape
