"""The base class every kfuse fusion layer derives from."""

import keras
from keras import ops


class FusionLayer(keras.layers.Layer):
    """Combines a list of branch tensors into one tensor.

    Subclasses implement `fuse(inputs, presence)` and, where the output shape is not the
    shape of the first input, `compute_output_shape`. The base class checks the number of
    branches, names branches in its errors, and passes an optional presence mask.

    Args:
        branch_names (list[str] | None): optional list of branch names, set by `kfuse.stack`; used
            in error messages and to label learned weights.
        **kwargs (Any): standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a list of M tensors, one per branch, each `(batch, ..., features)`.
        presence: optional `(batch, M)` tensor of 1 (branch present) and 0 (absent).
            Operators that support it give an absent branch no weight.

    Example:

    ```python
    import numpy as np
    import kfuse

    fuse = kfuse.layers.Average()
    out = fuse([np.ones((2, 3)), np.zeros((2, 3))])  # shape (2, 3), all 0.5
    ```
    """

    #: the fewest branches the operator accepts
    min_branches = 1
    #: whether every branch must have the same shape (Average, Vote, ...)
    requires_equal_shapes = False
    #: whether the layer honours the `presence` mask
    supports_presence = False

    def __init__(self, branch_names=None, **kwargs):
        super().__init__(**kwargs)
        self.branch_names = list(branch_names) if branch_names is not None else None

    # -- helpers for subclasses ---------------------------------------------------------
    def _label(self, index):
        if self.branch_names and index < len(self.branch_names):
            return f"branch '{self.branch_names[index]}'"
        return f"branch #{index}"

    def _check_shapes(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape or not isinstance(
            input_shape[0], (list, tuple)
        ):
            raise ValueError(
                f"{self.__class__.__name__} expects a list of branch tensors; "
                f"received input_shape={input_shape}"
            )
        shapes = [tuple(s) for s in input_shape]
        if len(shapes) < self.min_branches:
            raise ValueError(
                f"{self.__class__.__name__} needs at least {self.min_branches} branches; "
                f"received {len(shapes)}"
            )
        if self.branch_names and len(self.branch_names) != len(shapes):
            raise ValueError(
                f"{self.__class__.__name__} was given {len(self.branch_names)} branch names "
                f"{self.branch_names} but {len(shapes)} inputs"
            )
        if self.requires_equal_shapes:
            first = shapes[0][1:]
            for i, shape in enumerate(shapes[1:], start=1):
                if tuple(shape[1:]) != tuple(first):
                    listing = ", ".join(
                        f"{self._label(j)}: {tuple(s[1:])}" for j, s in enumerate(shapes)
                    )
                    raise ValueError(
                        f"{self.__class__.__name__} needs every branch to output the same "
                        f"shape, but {self._label(i)} outputs {tuple(shape[1:])} while "
                        f"{self._label(0)} outputs {tuple(first)} ({listing}). Project the "
                        "branches to one width first, or use kfuse.layers.Concat."
                    )
        return shapes

    def _check_flat(self, shapes, known_width=False):
        """Refuse branches that are not `(batch, features)` (of known width if asked)."""
        for i, shape in enumerate(shapes):
            if len(shape) != 2 or (known_width and shape[-1] is None):
                of_width = " of known width" if known_width else ""
                raise ValueError(
                    f"{self.__class__.__name__} takes (batch, features) branches{of_width}; "
                    f"{self._label(i)} outputs shape {shape}"
                )

    def _check_weight_count(self, weights, count):
        """Refuse fixed per-branch `weights` whose number is not the branches' `count`."""
        if weights is not None and len(weights) != count:
            raise ValueError(f"{self.__class__.__name__} was given {len(weights)} weights for {count} branches: {weights}")

    def _by_branch(self, values):
        """Branch name (`branch_<i>` where unnamed) -> float, for per-branch `values`."""
        names = self.branch_names or [f"branch_{i}" for i in range(len(values))]
        return {name: float(v) for name, v in zip(names, values, strict=False)}

    def build(self, input_shape):
        self._check_shapes(input_shape)
        super().build(input_shape)

    def call(self, inputs, presence=None):
        inputs = list(inputs)
        if presence is not None and not self.supports_presence:
            raise ValueError(f"{self.__class__.__name__} does not support a presence mask.")
        if presence is not None:
            presence = ops.cast(presence, inputs[0].dtype)
        return self.fuse(inputs, presence)

    def fuse(self, inputs, presence):
        """Combine `inputs` (a list of tensors); `presence` is `(batch, M)` or None."""
        raise TypeError(f"{self.__class__.__name__} subclasses FusionLayer but defines no fuse()")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update({"branch_names": self.branch_names})
        return config


def expand_presence(presence, like):
    """Reshape a `(batch,)` presence column so it broadcasts against `like`."""
    for _ in range(len(like.shape) - 1):
        presence = ops.expand_dims(presence, -1)
    return presence


def weighted_mean(inputs, weights, presence=None, epsilon=1e-7):
    """Sum_i w_i x_i / sum_i w_i, with absent branches (presence 0) given no weight.

    `weights` is a length-M list of scalars or `(batch,)` tensors.
    """
    total = None
    norm = None
    for i, x in enumerate(inputs):
        w = weights[i]
        if presence is not None:
            w = w * presence[:, i]
        w_b = expand_presence(w, x) if len(getattr(w, "shape", ())) == 1 else w
        term = w_b * x
        total = term if total is None else total + term
        norm = w_b if norm is None else norm + w_b
    return total / ops.maximum(ops.cast(norm, total.dtype), epsilon)
