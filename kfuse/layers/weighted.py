"""Weighted averaging with fixed or learned (softmax-normalised) branch weights."""

import keras
import numpy as np
from keras import ops

from kfuse.layers.base import FusionLayer, weighted_mean


@keras.saving.register_keras_serializable(package="kfuse")
class WeightedAverage(FusionLayer):
    """sum_i w_i x_i over branch outputs of one shape, with sum_i w_i = 1.

    Either fixed weights (`weights=[...]`, normalised to sum to one) or learned ones
    (`learnable=True`: one trainable logit per branch, softmax-normalised, initialised
    from `weights` or uniform). Read them after training with `branch_weights()`.

    Args:
        weights (list[float] | None): optional list of M non-negative numbers.
        learnable (bool | None): bool, default True when `weights` is None.

    Keyword Args:
        branch_names (list[str] | None): optional branch names (set by `kfuse.stack`).

    Example:

    ```python
    import numpy as np
    import kfuse

    fuse = kfuse.layers.WeightedAverage(weights=[3, 1], learnable=False)
    out = fuse([np.ones((2, 4)), np.zeros((2, 4))])  # all 0.75
    fuse.branch_weights()  # {'branch_0': 0.75, 'branch_1': 0.25}
    ```
    """

    min_branches = 1
    requires_equal_shapes = True
    supports_presence = True

    def __init__(self, weights=None, learnable=None, **kwargs):
        super().__init__(**kwargs)
        if weights is not None:
            weights = [float(w) for w in weights]
            if any(w < 0 for w in weights) or sum(weights) <= 0:
                raise ValueError(
                    f"WeightedAverage: `weights` must be non-negative with a positive sum; "
                    f"received {weights}"
                )
        self.weights_init = weights
        self.learnable = (weights is None) if learnable is None else bool(learnable)
        if not self.learnable and weights is None:
            raise ValueError("WeightedAverage: fixed weights (learnable=False) need `weights=`")

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        count = len(shapes)
        self._check_weight_count(self.weights_init, count)
        if self.learnable:
            init = (
                np.log(np.maximum(np.asarray(self.weights_init) / sum(self.weights_init), 1e-6))
                if self.weights_init is not None
                else np.zeros(count)
            )
            self.logits = self.add_weight(
                name="branch_logits",
                shape=(count,),
                initializer=keras.initializers.Constant(init.astype("float32")),
                trainable=True,
            )
        self.built = True

    def _normalised(self, count):
        if self.learnable:
            return ops.softmax(self.logits)
        total = sum(self.weights_init)
        return ops.convert_to_tensor([w / total for w in self.weights_init], dtype=self.compute_dtype)

    def fuse(self, inputs, presence):
        w = ops.cast(self._normalised(len(inputs)), inputs[0].dtype)
        return weighted_mean(inputs, [w[i] for i in range(len(inputs))], presence)

    def branch_weights(self):
        """The normalised branch weights as a dict of branch name to float."""
        if self.learnable:
            values = keras.ops.convert_to_numpy(ops.softmax(self.logits))
        else:
            values = np.asarray(self.weights_init) / sum(self.weights_init)
        return self._by_branch(values)

    def get_config(self):
        config = super().get_config()
        config.update({"weights": self.weights_init, "learnable": self.learnable})
        return config
