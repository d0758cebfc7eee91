"""Attention over branch embeddings: a learned query scores each branch per sample."""

import math

import keras
from keras import ops

from kfuse.layers.gated import check_units
from kfuse.layers.masking import MultiBranchFusion, masked_softmax


@keras.saving.register_keras_serializable(package="kfuse")
class AttentionFusion(MultiBranchFusion):
    """Softmax attention over branches: out = sum_i a_i h_i, a = softmax_i(q . tanh(K h_i) / sqrt(d)).

    Each branch embedding x_i is projected to `units` (h_i = W_i x_i; with `units=None`
    the branches must share one width and are used as they are). A learned query `q`
    scores every branch per sample; absent branches (presence 0) get zero weight and the
    weights of the present ones sum to one.

    Args:
        units (int | None): int > 0 or None, width of the fused output.
        return_weights (bool): if True the layer returns `[fused, weights]`, weights `(batch, M)`.

    Keyword Args:
        branch_names (list[str] | None): optional branch names (set by `kfuse.stack`).

    Example:

    ```python
    import numpy as np
    import kfuse

    fuse = kfuse.layers.AttentionFusion(units=8, return_weights=True)
    out, weights = fuse([np.ones((2, 5)), np.ones((2, 3)), np.ones((2, 4))])  # (2, 8), (2, 3)
    ```
    """

    def __init__(self, units=None, return_weights=False, **kwargs):
        super().__init__(**kwargs)
        self.units = check_units("AttentionFusion", units, allow_none=True)
        self.return_weights = bool(return_weights)
        self.projections = []

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        self._check_flat(shapes)
        widths = [s[-1] for s in shapes]
        self.projections = []
        if self.units is None:
            if len(set(widths)) != 1:
                listing = ", ".join(f"{self._label(i)}: {w}" for i, w in enumerate(widths))
                raise ValueError(
                    f"AttentionFusion(units=None) needs branches of one width; received "
                    f"{listing}. Pass units= to project each branch first."
                )
            width = widths[0]
        else:
            width = self.units
            for i, shape in enumerate(shapes):
                dense = keras.layers.Dense(width, name=f"projection_{i}", dtype=self.dtype_policy)
                dense.build(shape)
                self.projections.append(dense)
        self.key = keras.layers.Dense(width, activation="tanh", name="key", dtype=self.dtype_policy)
        self.key.build((None, len(shapes), width))
        self.query = self.add_weight(
            name="query", shape=(width,), initializer="glorot_uniform", trainable=True
        )
        self.built = True

    def fuse(self, inputs, presence):
        hidden = [self.projections[i](x) if self.projections else x for i, x in enumerate(inputs)]
        hidden = ops.stack(hidden, axis=1)
        width = hidden.shape[-1]
        query = ops.cast(self.query, hidden.dtype)
        scores = ops.sum(self.key(hidden) * query, axis=-1) / math.sqrt(width)
        weights = masked_softmax(scores, presence, axis=1)
        fused = ops.sum(ops.expand_dims(weights, -1) * hidden, axis=1)
        return [fused, weights] if self.return_weights else fused

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        width = self.units if self.units is not None else shapes[0][-1]
        out = (shapes[0][0], width)
        return [out, (shapes[0][0], len(shapes))] if self.return_weights else out

    @staticmethod
    def cost_formula(widths, units=None, **_):
        """Parameters, FLOPs per sample and output width, from the branch widths."""
        widths = [int(w) for w in widths]
        count = len(widths)
        width = units or widths[0]
        params = sum((w + 1) * width for w in widths) if units else 0
        flops = sum(2 * w * width + width for w in widths) if units else 0
        params += (width + 1) * width + width
        flops += count * (2 * width * width + width) + count * 2 * width + 2 * count * width
        return {"params": params, "flops": flops, "output_width": width}

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "return_weights": self.return_weights})
        return config
