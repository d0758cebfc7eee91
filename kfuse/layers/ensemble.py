"""Fixed ensemble layers: `WeightedMedian` (AdaBoost.R2's prediction) and
`ProbabilityLogits`; `WeightedVote` (AdaBoost SAMME's hard vote) is `kfuse.layers.vote`'s."""

import keras
import numpy as np
from keras import ops

from kfuse.layers import FusionLayer
from kfuse.layers.vote import WeightedVote  # noqa: F401  (saved graphs name it here)


@keras.saving.register_keras_serializable(package="kfuse_ensemble")
class WeightedMedian(FusionLayer):
    """The weighted median of the members' outputs, per row and output column.

    scikit-learn's `AdaBoostRegressor._get_median_predict` rule: sort the M member values
    of a row, accumulate their weights in that order, and return the first value whose
    cumulative weight reaches half the total. Ties give the same value whatever their
    order. Weights are fixed (not trained); the cumulative sums are float64, as
    scikit-learn's `stable_cumsum`. Branches are `(batch, outputs)`; each output column
    gets its own median.

    Args:
        weights (list[float]): list of M non-negative numbers (all zero picks the smallest value, as
            scikit-learn does).

    Keyword Args:
        branch_names (list[str] | None): optional branch names (set by `kfuse.stack`).

    Example:

    ```python
    import numpy as np
    from kfuse.layers.ensemble import WeightedMedian

    a, b, c = np.array([[1.0]]), np.array([[5.0]]), np.array([[2.0]])
    WeightedMedian([1.0, 3.0, 1.0])([a, b, c])  # [[5.0]]: 5 holds 3/5 of the weight
    ```
    """

    min_branches = 1
    requires_equal_shapes = True

    def __init__(self, weights, **kwargs):
        super().__init__(**kwargs)
        weights = [float(w) for w in weights]
        if not weights or any(not np.isfinite(w) or w < 0 for w in weights):
            raise ValueError(f"WeightedMedian: `weights` must be finite and non-negative; received {weights}")
        self.weights_init = weights

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        self._check_weight_count(self.weights_init, len(shapes))
        self._check_flat(shapes)
        self.built = True

    def fuse(self, inputs, presence):
        values = ops.stack(inputs, axis=-1)  # (batch, outputs, M)
        order = ops.argsort(values, axis=-1)
        weights = ops.convert_to_tensor(np.asarray(self.weights_init, "float64"))
        cdf = ops.cumsum(ops.take(weights, order), axis=-1)
        reached = ops.cast(cdf >= 0.5 * cdf[..., -1:], "int32")
        first = ops.argmax(reached, axis=-1)[..., None]  # first index at or past half
        chosen = ops.take_along_axis(order, first, axis=-1)
        return ops.take_along_axis(values, chosen, axis=-1)[..., 0]

    def branch_weights(self):
        """The normalised member weights as a dict of branch name to float."""
        total = sum(self.weights_init) or 1.0
        return self._by_branch([w / total for w in self.weights_init])

    def get_config(self):
        config = super().get_config()
        config.update({"weights": self.weights_init})
        return config


@keras.saving.register_keras_serializable(package="kfuse_ensemble")
class ProbabilityLogits(keras.layers.Layer):
    """Logits whose softmax (or sigmoid) gives back the input probabilities.

    "softmax": log(p), so softmax(log p) = p for rows that sum to one; "sigmoid": the
    log-odds log(p) - log(1 - p) per unit. Probabilities are clipped to [eps, 1 - eps]
    first. It ends a fixed average of class probabilities (`assemble.fixed_average`) so the
    graph hands out logits, as a classification head does.

    Args:
        activation (str): "softmax" or "sigmoid" (the head's).
        epsilon (float): the clip, default 1e-7.

    Example:

    ```python
    import numpy as np
    from kfuse.layers.ensemble import ProbabilityLogits

    ProbabilityLogits("sigmoid")(np.array([[0.5, 0.75]]))  # [[0.0, 1.0986]]
    ```
    """

    def __init__(self, activation="softmax", epsilon=1e-7, **kwargs):
        super().__init__(**kwargs)
        if activation not in ("softmax", "sigmoid"):
            raise ValueError(f"ProbabilityLogits: `activation` must be 'softmax' or 'sigmoid'; received {activation!r}")
        self.activation = activation
        self.epsilon = float(epsilon)

    def call(self, inputs):
        p = ops.clip(inputs, self.epsilon, 1.0 - self.epsilon)
        if self.activation == "softmax":
            return ops.log(p)
        return ops.log(p) - ops.log(1.0 - p)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"activation": self.activation, "epsilon": self.epsilon})
        return config
