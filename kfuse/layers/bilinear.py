"""Bilinear pooling (MLB / MFB), generalised to M branches by a multi-way Hadamard product."""

import keras
from keras import ops

from kfuse.layers.gated import check_units
from kfuse.layers.masking import MultiBranchFusion, neutral_when_absent


@keras.saving.register_keras_serializable(package="kfuse")
class BilinearFusion(MultiBranchFusion):
    """Factorised bilinear pooling: sum-pool_k( prod_m act(W_m x_m) ), signed sqrt, L2 norm.

    Each branch is projected to `units * factor` features; the projections are
    multiplied element-wise over ALL branches (for M > 2 this is the M-way
    generalisation of the bilinear form, no branch is dropped), sum-pooled over windows
    of `factor` (MFB; `factor=1` is MLB), then passed through a signed square root and
    L2 normalisation (`normalize=True`). An absent branch (presence 0) contributes the
    neutral factor 1 to the product.

    Args:
        units (int): int > 0, output width.
        factor (int): int > 0, the MFB factor k.
        activation (str | Callable | None): activation of the projections (None for MFB, "tanh" for
            MLB).
        normalize (bool): apply the signed square root and L2 normalisation.

    Keyword Args:
        branch_names (list[str] | None): optional branch names (set by `kfuse.stack`).

    Example:

    ```python
    import numpy as np
    import kfuse

    fuse = kfuse.layers.BilinearFusion(units=8, factor=3)
    out = fuse([np.ones((2, 5)), np.ones((2, 3)), np.ones((2, 4))])  # (2, 8), unit L2 norm
    ```
    """

    def __init__(self, units=64, factor=4, activation=None, normalize=True, **kwargs):
        super().__init__(**kwargs)
        self.units = check_units("BilinearFusion", units)
        self.factor = check_units("BilinearFusion", factor, "factor")
        self.activation = keras.activations.get(activation)
        self.normalize = bool(normalize)
        self.projections = []

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        self._check_flat(shapes)
        self.projections = []
        for i, shape in enumerate(shapes):
            dense = keras.layers.Dense(
                self.units * self.factor, name=f"projection_{i}", dtype=self.dtype_policy
            )
            dense.build(shape)
            self.projections.append(dense)
        self.built = True

    def fuse(self, inputs, presence):
        product = None
        for i, x in enumerate(inputs):
            factor = neutral_when_absent(self.activation(self.projections[i](x)), presence, i)
            product = factor if product is None else product * factor
        pooled = ops.sum(ops.reshape(product, (-1, self.units, self.factor)), axis=-1)
        if not self.normalize:
            return pooled
        eps = 1e-8
        signed = ops.sign(pooled) * (ops.sqrt(ops.abs(pooled) + eps) - eps**0.5)
        norm = ops.sqrt(ops.sum(ops.square(signed), axis=-1, keepdims=True))
        return signed / ops.maximum(norm, 1e-12)

    def compute_output_shape(self, input_shape):
        return (tuple(input_shape[0])[0], self.units)

    @staticmethod
    def cost_formula(widths, units=64, factor=4, normalize=True, **_):
        """Parameters, FLOPs per sample and output width, from the branch widths."""
        widths = [int(w) for w in widths]
        inner = units * factor
        params = sum((w + 1) * inner for w in widths)
        flops = sum(2 * w * inner + inner for w in widths) + (len(widths) - 1) * inner + inner
        if normalize:
            flops += 5 * units
        return {"params": params, "flops": flops, "output_width": units}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "factor": self.factor,
                "activation": keras.activations.serialize(self.activation),
                "normalize": self.normalize,
            }
        )
        return config
