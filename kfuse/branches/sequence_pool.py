"""Pooling a branch's sequence output to one vector per row, inside the branch.

A backbone whose output is a sequence, (batch, tokens, features) such as BERT's
`sequence_output`, a decoder's hidden states or ViT's patch tokens, is pooled in the
branch with `Branch(..., pool=...)`:

| pool            | each row's vector                                             |
|-----------------|---------------------------------------------------------------|
| "mean"          | the mean over every position (every pixel of a feature map)   |
| "masked_mean"   | the mean over the positions where the padding mask is true    |
| "first"         | the first position (BERT's [CLS], ViT's class token)          |
| "last"          | the last position where the padding mask is true (a decoder's |
|                 | last real token); the last position without a padding mask    |

The padding mask is the base's input named `padding_mask`, else its one input whose name
ends in `padding_mask` (Whisper's `decoder_padding_mask`).
"""

import keras
from keras import ops

POOLS = ("mean", "masked_mean", "first", "last")
MASKED = ("masked_mean",)


@keras.saving.register_keras_serializable(package="kfuse")
class SequencePool(keras.layers.Layer):
    """(batch, tokens, features) -> (batch, features), by `mode` (one of `POOLS`).

    Called on the sequence, or on `[sequence, padding_mask]` (padding mask: (batch, tokens),
    true or 1 at real tokens).

    Example:

    ```python
    import numpy as np
    from kfuse.branches.sequence_pool import SequencePool

    x = np.arange(12, dtype="float32").reshape(1, 3, 4)
    mask = np.array([[1, 1, 0]])
    assert np.allclose(SequencePool("masked_mean")([x, mask]), x[:, :2].mean(1))
    assert np.allclose(SequencePool("last")([x, mask]), x[:, 1])
    ```
    """

    def __init__(self, mode, **kwargs):
        super().__init__(**kwargs)
        if mode not in POOLS:
            raise ValueError(f"SequencePool: `mode` must be one of {POOLS}; received {mode!r}")
        self.mode = mode

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            x, mask = inputs
        else:
            x, mask = inputs, None
        if self.mode == "first":
            return x[:, 0]
        if self.mode == "mean" or (self.mode == "masked_mean" and mask is None):
            return ops.mean(x, axis=tuple(range(1, len(x.shape) - 1)))
        if self.mode == "last" and mask is None:
            return x[:, -1]
        keep = ops.cast(ops.cast(mask, "bool"), x.dtype)
        if self.mode == "masked_mean":
            total = ops.sum(x * keep[:, :, None], axis=1)
            return total / ops.maximum(ops.sum(keep, axis=1, keepdims=True), 1.0)
        positions = ops.arange(ops.shape(x)[1], dtype="int32")[None, :]
        last = ops.max(positions * ops.cast(keep, "int32"), axis=1)
        return ops.take_along_axis(x, last[:, None, None], axis=1)[:, 0]

    def compute_output_shape(self, input_shape):
        shape = (
            input_shape[0]
            if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple))
            else input_shape
        )
        return (shape[0], shape[-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def padding_mask_input(model):
    """The input tensor of `model` that is its padding mask, or None."""
    inputs = {t.name: t for t in model.inputs}
    if "padding_mask" in inputs:
        return inputs["padding_mask"]
    ending = [t for name, t in inputs.items() if name.endswith("padding_mask")]
    return ending[0] if len(ending) == 1 else None


def check_pool(pool, branch_name, model=None, tensor=None):
    """Refuse an unknown `pool`, a masked pool without a padding mask input, or a tensor
    that is not a sequence (batch, tokens, features)."""
    if pool is None:
        return
    if pool not in POOLS:
        raise ValueError(
            f"Branch '{branch_name}': `pool` must be one of {POOLS}; received {pool!r}"
        )
    if model is None:
        raise ValueError(
            f"Branch '{branch_name}': pool={pool!r} needs a base model; a callable branch "
            "returns what it computes (put the pooling in the callable)"
        )
    if pool in MASKED and padding_mask_input(model) is None:
        raise ValueError(
            f"Branch '{branch_name}': pool={pool!r} needs the base's padding mask, an input "
            f"named 'padding_mask', but its inputs are {[t.name for t in model.inputs]}. "
            "Use pool='mean' (every position) or 'first'."
        )
    rank = None if tensor is None else len(tensor.shape)
    if rank is not None and rank != 3 and not (pool == "mean" and rank > 3):
        raise ValueError(
            f"Branch '{branch_name}': pool={pool!r} pools a sequence (batch, tokens, "
            f"features) (pool='mean' also a feature map), but the selected output has shape "
            f"{tuple(tensor.shape)}. Select a sequence output "
            "(select=...) or leave pool=None."
        )


def pool_sequence(model, tensor, pool, branch_name):
    """`tensor` (an output of `model`) pooled by `pool` with a `SequencePool` layer."""
    layer = SequencePool(pool, name=f"{branch_name}_{pool}_pool")
    mask = padding_mask_input(model) if pool in ("masked_mean", "last") else None
    return layer(tensor if mask is None else [tensor, mask])
