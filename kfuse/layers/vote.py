"""Soft and hard voting over classifier branches."""

import keras
from keras import ops

from kfuse.layers.base import FusionLayer, expand_presence


@keras.saving.register_keras_serializable(package="kfuse")
class Vote(FusionLayer):
    """Majority (hard) or probability-averaging (soft) voting over class scores.

    Every branch outputs `(batch, classes)`. Soft voting averages class probabilities;
    hard voting gives each branch one vote for its arg-max class and returns the vote
    share per class (ties keep the lowest class index under `argmax`). The output is a
    probability-like `(batch, classes)` tensor, so stack voting with `head=None`.

    Args:
        mode (str): "soft" or "hard".
        inputs_are (str): "probabilities" (default) or "logits": what the branches emit.
            With "logits", soft voting applies a softmax to each branch first.

    Keyword Args:
        branch_names (list[str] | None): optional branch names (set by `kfuse.stack`).

    Example:

    ```python
    import numpy as np
    import kfuse

    a = np.array([[0.9, 0.1]]); b = np.array([[0.4, 0.6]]); c = np.array([[0.45, 0.55]])
    kfuse.layers.Vote("hard")([a, b, c])  # [[1/3, 2/3]]
    kfuse.layers.Vote("soft")([a, b, c])  # [[0.583, 0.417]]
    ```
    """

    min_branches = 1
    requires_equal_shapes = True
    supports_presence = True

    def __init__(self, mode="soft", inputs_are="probabilities", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("soft", "hard"):
            raise ValueError(f"Vote: `mode` must be 'soft' or 'hard'; received {mode!r}")
        if inputs_are not in ("probabilities", "logits"):
            raise ValueError(
                f"Vote: `inputs_are` must be 'probabilities' or 'logits'; received {inputs_are!r}"
            )
        self.mode = mode
        self.inputs_are = inputs_are

    def fuse(self, inputs, presence):
        classes = inputs[0].shape[-1]
        total = None
        norm = None
        for i, x in enumerate(inputs):
            if self.mode == "hard":
                x = ops.one_hot(ops.argmax(x, axis=-1), classes, dtype=x.dtype)
            elif self.inputs_are == "logits":
                x = ops.softmax(x, axis=-1)
            w = ops.ones_like(x[..., 0]) if presence is None else presence[:, i]
            w = expand_presence(w, x)
            total = w * x if total is None else total + w * x
            norm = w if norm is None else norm + w
        return total / ops.maximum(norm, 1e-7)

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "inputs_are": self.inputs_are})
        return config
