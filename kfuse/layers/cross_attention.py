"""Cross-modal attention over sequence branches, on keras.layers.MultiHeadAttention."""

import keras
from keras import ops

from kfuse.layers.base import weighted_mean
from kfuse.layers.gated import check_units
from kfuse.layers.masking import MultiBranchFusion, check_presence


@keras.saving.register_keras_serializable(package="kfuse")
class CrossAttentionFusion(MultiBranchFusion):
    """Every sequence branch attends to the tokens of all other branches, then all are pooled.

    Branch i, `(batch, steps_i, d_i)`, is projected to `units`; it queries the
    concatenated tokens of the other branches with its own `MultiHeadAttention`
    (residual connection and LayerNormalization after it), is mean-pooled over its
    valid steps, and the pooled branches are averaged. Lengths and widths may differ.

    Padding: Keras masks (e.g. from `Embedding(mask_zero=True)`) reach the layer
    automatically; or pass `mask=[m_1, ..., m_M]`, each `(batch, steps_i)` with 1 for a
    real step (None for a branch without padding). Padded steps are never attended to
    and never pooled. An absent branch (presence 0) is neither attended to nor averaged.

    Args:
        units (int): int > 0, model width and output width.
        num_heads (int): int > 0.
        key_dim (int | None): int > 0 or None (default units // num_heads, at least 1).
        dropout (float): attention dropout rate.

    Keyword Args:
        branch_names (list[str] | None): optional branch names (set by `kfuse.stack`).

    Example:

    ```python
    import numpy as np
    import kfuse

    fuse = kfuse.layers.CrossAttentionFusion(units=8, num_heads=2)
    text, audio = np.ones((2, 5, 4)), np.ones((2, 7, 3))
    out = fuse([text, audio], mask=[np.array([[1, 1, 1, 0, 0]] * 2), None])  # (2, 8)
    ```
    """

    def __init__(self, units=64, num_heads=4, key_dim=None, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = check_units("CrossAttentionFusion", units)
        self.num_heads = check_units("CrossAttentionFusion", num_heads, "num_heads")
        self.key_dim = check_units("CrossAttentionFusion", key_dim, "key_dim", allow_none=True)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"CrossAttentionFusion: `dropout` must lie in [0, 1); received {dropout!r}")
        self.dropout = float(dropout)
        self.supports_masking = True
        self.projections, self.attentions, self.norms = [], [], []

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        for i, shape in enumerate(shapes):
            if len(shape) != 3:
                raise ValueError(
                    f"CrossAttentionFusion takes sequence branches (batch, steps, features); "
                    f"{self._label(i)} outputs shape {shape}. Use AttentionFusion or "
                    "GatedFusion for (batch, features) branches."
                )
        key_dim = self.key_dim or max(1, self.units // self.num_heads)
        self.projections, self.attentions, self.norms = [], [], []
        for i, shape in enumerate(shapes):
            dense = keras.layers.Dense(self.units, name=f"projection_{i}", dtype=self.dtype_policy)
            dense.build(shape)
            attention = keras.layers.MultiHeadAttention(
                self.num_heads, key_dim, dropout=self.dropout, name=f"attention_{i}",
                dtype=self.dtype_policy,
            )
            steps = [s[1] for j, s in enumerate(shapes) if j != i]
            other = None if any(t is None for t in steps) else sum(steps)
            attention.build((None, shape[1], self.units), (None, other, self.units))
            norm = keras.layers.LayerNormalization(name=f"norm_{i}", dtype=self.dtype_policy)
            norm.build((None, shape[1], self.units))
            self.projections.append(dense)
            self.attentions.append(attention)
            self.norms.append(norm)
        self.built = True

    def call(self, inputs, presence=None, mask=None, training=None):
        inputs = list(inputs)
        if presence is not None:
            check_presence(self, presence, len(inputs), inputs[0].shape[0])
            presence = ops.cast(presence, inputs[0].dtype)
        masks = list(mask) if isinstance(mask, (list, tuple)) else [None] * len(inputs)
        if len(masks) != len(inputs):
            raise ValueError(
                f"CrossAttentionFusion: {len(masks)} padding masks for {len(inputs)} branches"
            )
        return self._attend(inputs, presence, masks, training)

    def fuse(self, inputs, presence):
        return self._attend(inputs, presence, [None] * len(inputs), None)

    def _attend(self, inputs, presence, masks, training):
        hidden, valid = [], []
        for i, x in enumerate(inputs):
            h = self.projections[i](x)
            m = ops.ones_like(h[:, :, 0]) if masks[i] is None else ops.cast(masks[i], h.dtype)
            hidden.append(h)
            valid.append(m if presence is None else m * ops.expand_dims(presence[:, i], -1))
        pooled = []
        for i, h in enumerate(hidden):
            others = [j for j in range(len(hidden)) if j != i]
            keys = ops.concatenate([hidden[j] for j in others], axis=1)
            key_mask = ops.concatenate([valid[j] for j in others], axis=1)
            attention_mask = ops.expand_dims(key_mask, 1) * ops.expand_dims(ops.ones_like(h[:, :, 0]), -1)
            attended = self.attentions[i](
                h, keys, attention_mask=attention_mask > 0, training=training
            )
            anything = ops.max(key_mask, axis=1)
            attended = attended * ops.expand_dims(ops.expand_dims(anything, -1), -1)
            z = self.norms[i](h + attended)
            weights = ops.expand_dims(valid[i], -1)
            pooled.append(ops.sum(z * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0))
        ones = ops.ones_like(pooled[0][:, 0])
        return weighted_mean(pooled, [ones] * len(pooled), presence)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (tuple(input_shape[0])[0], self.units)

    @staticmethod
    def cost_formula(widths, units=64, num_heads=4, key_dim=None, **_):
        """Parameters and FLOPs per sample; `widths` holds (steps, features) per branch."""
        shapes = [tuple(w) if isinstance(w, (tuple, list)) else (1, int(w)) for w in widths]
        kd = key_dim or max(1, units // num_heads)
        inner = num_heads * kd
        params, flops = 0, 0
        for i, (steps, width) in enumerate(shapes):
            other = sum(t for j, (t, _) in enumerate(shapes) if j != i)
            params += (width + 1) * units + 3 * (units + 1) * inner + (inner + 1) * units + 2 * units
            flops += 2 * steps * width * units
            flops += 2 * steps * units * inner + 2 * 2 * other * units * inner
            flops += 2 * 2 * steps * other * inner + 2 * steps * inner * units + 8 * steps * units
        return {"params": params, "flops": flops, "output_width": units}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "dropout": self.dropout,
            }
        )
        return config
