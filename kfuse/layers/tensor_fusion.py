"""Tensor Fusion (TFN, Zadeh et al. 2017): the outer product of [1; z_m], guarded by size."""

import math

import keras
from keras import ops

from kfuse.layers.gated import check_units
from kfuse.layers.low_rank import LowRankFusion
from kfuse.layers.masking import MultiBranchFusion, presence_column


@keras.saving.register_keras_serializable(package="kfuse")
class TensorFusion(MultiBranchFusion):
    """z = vec([1; z_1] (x) [1; z_2] (x) ... (x) [1; z_M]), optionally followed by Dense(units).

    The product holds every unimodal, bimodal, ..., M-modal interaction, and its width
    prod_m (d_m + 1) grows exponentially with M. Above `max_size` features the layer
    refuses to build, and its error states what `LowRankFusion` would cost instead.
    An absent branch (presence 0) is zeroed, so only the interactions of the present
    branches remain.

    Args:
        units (int | None): int > 0 or None. With an int, a Dense(units) maps the product to
            `units`.
        max_size (int): int > 0, the largest product width accepted (default 262,144).

    Keyword Args:
        branch_names (list[str] | None): optional branch names (set by `kfuse.stack`).

    Example:

    ```python
    import numpy as np
    import kfuse

    out = kfuse.layers.TensorFusion()([np.ones((2, 3)), np.ones((2, 4))])  # (2, 20)
    ```
    """

    def __init__(self, units=None, max_size=2**18, **kwargs):
        super().__init__(**kwargs)
        self.units = check_units("TensorFusion", units, allow_none=True)
        self.max_size = check_units("TensorFusion", max_size, "max_size")
        self.dense = None

    @staticmethod
    def product_width(widths):
        return math.prod(int(w) + 1 for w in widths)

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        self._check_flat(shapes, known_width=True)
        widths = [s[-1] for s in shapes]
        size = self.product_width(widths)
        if size > self.max_size:
            units = self.units or 64
            lmf = LowRankFusion.cost_formula(widths, units=units, rank=4)
            mine = self.cost_formula(widths, units=self.units)
            raise ValueError(
                f"TensorFusion over branch widths {widths} "
                f"({', '.join(self._label(i) for i in range(len(widths)))}) builds a "
                f"product of {size:,} features per sample (prod(d_m + 1)), above "
                f"max_size={self.max_size:,}; it would need {mine['params']:,} parameters "
                f"and {mine['flops']:,} FLOPs per sample. LowRankFusion(units={units}, rank=4) "
                f"would cost {lmf['params']:,} parameters and {lmf['flops']:,} FLOPs per "
                "sample. Use LowRankFusion, project the branches to fewer features, or raise "
                "max_size."
            )
        if self.units is not None:
            self.dense = keras.layers.Dense(self.units, name="projection", dtype=self.dtype_policy)
            self.dense.build((None, size))
        self.built = True

    def fuse(self, inputs, presence):
        product = None
        for i, z in enumerate(inputs):
            if presence is not None:
                z = z * presence_column(presence, i, z)
            augmented = ops.concatenate([ops.ones_like(z[:, :1]), z], axis=-1)
            if product is None:
                product = augmented
                continue
            outer = ops.expand_dims(product, -1) * ops.expand_dims(augmented, 1)
            product = ops.reshape(outer, (-1, product.shape[-1] * augmented.shape[-1]))
        return self.dense(product) if self.dense is not None else product

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        width = self.units if self.units is not None else self.product_width(s[-1] for s in shapes)
        return (shapes[0][0], width)

    @staticmethod
    def cost_formula(widths, units=None, **_):
        """Parameters, FLOPs per sample and output width, from the branch widths."""
        widths = [int(w) for w in widths]
        flops = 0
        size = widths[0] + 1
        for w in widths[1:]:
            size *= w + 1
            flops += size
        params = 0
        if units is not None:
            params = size * units + units
            flops += 2 * size * units + units
        return {"params": params, "flops": flops, "output_width": units or size}

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "max_size": self.max_size})
        return config
