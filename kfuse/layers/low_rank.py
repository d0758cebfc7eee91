"""Low-rank Multimodal Fusion (LMF, Liu et al. 2018), any number of branches."""

import keras
from keras import ops

from kfuse.layers.gated import check_units
from kfuse.layers.masking import MultiBranchFusion, neutral_when_absent


@keras.saving.register_keras_serializable(package="kfuse")
class LowRankFusion(MultiBranchFusion):
    """y = sum_r w_r * prod_m ([1; z_m] W_m^(r)) + b: a rank-`rank` tensor fusion.

    The same model class as `TensorFusion` followed by a Dense layer, with the weight
    tensor factorised per branch, so parameters are rank * units * sum_m (d_m + 1):
    linear in the sum of widths, not exponential in the number of branches. Every
    factor is a registered weight (`factor_0`, `factor_1`, ...) and trains. An absent
    branch (presence 0) contributes the neutral factor 1 to the product.

    Args:
        units (int): int > 0, output width.
        rank (int): int > 0.

    Keyword Args:
        branch_names (list[str] | None): optional branch names (set by `kfuse.stack`).

    Example:

    ```python
    import numpy as np
    import kfuse

    fuse = kfuse.layers.LowRankFusion(units=8, rank=4)
    out = fuse([np.ones((2, 5)), np.ones((2, 3)), np.ones((2, 7))])  # shape (2, 8)
    ```
    """

    def __init__(self, units=64, rank=4, **kwargs):
        super().__init__(**kwargs)
        self.units = check_units("LowRankFusion", units)
        self.rank = check_units("LowRankFusion", rank, "rank")
        self.factors = []

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        self._check_flat(shapes, known_width=True)
        self.factors = [
            self.add_weight(
                name=f"factor_{i}",
                shape=(self.rank, shape[-1] + 1, self.units),
                initializer="glorot_normal",
                trainable=True,
            )
            for i, shape in enumerate(shapes)
        ]
        self.rank_weights = self.add_weight(
            name="rank_weights", shape=(self.rank,), initializer="glorot_normal", trainable=True
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros", trainable=True)
        self.built = True

    def fuse(self, inputs, presence):
        product = None
        for i, z in enumerate(inputs):
            ones = ops.ones_like(z[:, :1])
            augmented = ops.concatenate([ones, z], axis=-1)
            weights = ops.cast(self.factors[i], z.dtype)  # (rank, d + 1, units)
            flat = ops.reshape(ops.transpose(weights, (1, 0, 2)), (-1, self.rank * self.units))
            factor = ops.reshape(ops.matmul(augmented, flat), (-1, self.rank, self.units))
            factor = neutral_when_absent(factor, presence, i)
            product = factor if product is None else product * factor
        rank_weights = ops.reshape(ops.cast(self.rank_weights, product.dtype), (1, self.rank, 1))
        fused = ops.sum(product * rank_weights, axis=1)
        return fused + ops.cast(self.bias, fused.dtype)

    def compute_output_shape(self, input_shape):
        return (tuple(input_shape[0])[0], self.units)

    @staticmethod
    def cost_formula(widths, units=64, rank=4, **_):
        """Parameters, FLOPs per sample and output width, from the branch widths."""
        widths = [int(w) for w in widths]
        params = rank * units * sum(w + 1 for w in widths) + rank + units
        flops = sum(2 * rank * (w + 1) * units for w in widths)
        flops += (len(widths) - 1) * rank * units + 2 * rank * units + units
        return {"params": params, "flops": flops, "output_width": units}

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "rank": self.rank})
        return config
