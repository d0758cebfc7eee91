"""Concatenation fusion, optionally projecting every branch to one width first."""

import keras
from keras import ops

from kfuse.layers.base import FusionLayer


@keras.saving.register_keras_serializable(package="kfuse")
class Concat(FusionLayer):
    """Concatenates branch outputs on the last axis.

    With `units`, every branch is first projected by its own `Dense(units)` (and, with
    `normalize=True`, a `LayerNormalization`), so a 1024-wide image embedding cannot drown
    out a 10-wide logit vector.

    Args:
        units (int | None): int or None. Width of the per-branch projection; None concatenates as
            is.
        activation (str | Callable | None): activation of the projections (default None: linear).
        normalize (bool): bool. Apply a LayerNormalization to each branch (after its
            projection when `units` is set).

    Keyword Args:
        branch_names (list[str] | None): optional branch names (set by `kfuse.stack`).

    Example:

    ```python
    import numpy as np
    import kfuse

    fuse = kfuse.layers.Concat(units=8, normalize=True)
    out = fuse([np.ones((2, 3)), np.ones((2, 5))])  # shape (2, 16)
    ```
    """

    supports_presence = True

    def __init__(self, units=None, activation=None, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if units is not None and (not isinstance(units, int) or units <= 0):
            raise ValueError(f"Concat: `units` must be a positive int or None; received {units!r}")
        self.units = units
        self.activation = keras.activations.get(activation)
        self.normalize = normalize
        self.projections = []
        self.norms = []

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        self.projections = []
        self.norms = []
        for i, shape in enumerate(shapes):
            width = shape
            if self.units is not None:
                dense = keras.layers.Dense(
                    self.units, activation=self.activation, name=f"projection_{i}", dtype=self.dtype_policy
                )
                dense.build(shape)
                self.projections.append(dense)
                width = tuple(shape[:-1]) + (self.units,)
            if self.normalize:
                norm = keras.layers.LayerNormalization(name=f"norm_{i}", dtype=self.dtype_policy)
                norm.build(width)
                self.norms.append(norm)
        self.built = True

    def fuse(self, inputs, presence):
        parts = []
        for i, x in enumerate(inputs):
            if self.projections:
                x = self.projections[i](x)
            if self.norms:
                x = self.norms[i](x)
            if presence is not None:
                mask = presence[:, i]
                for _ in range(len(x.shape) - 1):
                    mask = ops.expand_dims(mask, -1)
                x = x * mask
            parts.append(x)
        return ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        if self.units is not None:
            width = self.units * len(shapes)
        elif any(s[-1] is None for s in shapes):
            width = None
        else:
            width = sum(s[-1] for s in shapes)
        return tuple(shapes[0][:-1]) + (width,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "normalize": self.normalize,
            }
        )
        return config
