"""Presence masks: the shared base of the multimodal operators and their mask helpers."""

from keras import ops

from kfuse.layers.base import FusionLayer

#: added to the logits of absent branches before a softmax
NEG_INF = -1e9


def check_presence(layer, presence, count, batch=None):
    """Raise ValueError unless `presence` has shape `(batch, count)`."""
    shape = tuple(presence.shape) if hasattr(presence, "shape") else (len(presence),)
    name = layer.__class__.__name__
    if len(shape) != 2 or (shape[1] is not None and int(shape[1]) != count):
        raise ValueError(
            f"{name}: the presence mask must have shape (batch, {count}), one column per "
            f"branch ({layer.branch_names or count} branches); received shape {shape}"
        )
    if isinstance(batch, int) and isinstance(shape[0], int) and shape[0] != batch:
        raise ValueError(
            f"{name}: the presence mask has {shape[0]} rows but the branches have "
            f"batch size {batch}"
        )


class MultiBranchFusion(FusionLayer):
    """A `FusionLayer` over at least two branches that honours a `(batch, M)` presence mask.

    The multimodal operators (`GatedFusion`, `LowRankFusion`, ...) derive from it. It
    checks the mask's shape when the layer is called (so a wrong mask fails while the
    graph is built) and hands `fuse(inputs, presence)` a float mask or None.

    Example:

    ```python
    import numpy as np
    import kfuse

    fuse = kfuse.layers.Median()  # a MultiBranchFusion
    out = fuse([np.zeros((2, 3)), np.ones((2, 3)), 9 * np.ones((2, 3))])  # all 1.0
    ```
    """

    min_branches = 2
    supports_presence = True

    def call(self, inputs, presence=None):
        inputs = list(inputs)
        if presence is not None:
            check_presence(self, presence, len(inputs), inputs[0].shape[0])
        return super().call(inputs, presence)

    def compute_output_spec(self, inputs, *args, presence=None, **kwargs):
        # symbolic calls go through compute_output_shape, not call: check the mask here
        if presence is not None:
            check_presence(self, presence, len(inputs), inputs[0].shape[0])
        return super().compute_output_spec(inputs, *args, presence=presence, **kwargs)


def presence_column(presence, index, like):
    """Branch `index`'s presence `(batch,)`, reshaped to broadcast against `like`."""
    column = presence[:, index]
    for _ in range(len(like.shape) - 1):
        column = ops.expand_dims(column, -1)
    return column


def neutral_when_absent(factor, presence, index):
    """For products over branches: an absent branch's factor becomes 1 (no effect)."""
    if presence is None:
        return factor
    p = presence_column(presence, index, factor)
    return factor * p + (1.0 - p)


def masked_softmax(logits, presence, axis=1):
    """Softmax over the branch axis giving absent branches exactly zero weight.

    `logits` is `(batch, M, ...)`; the weights of present branches sum to one; where no
    branch is present every weight is zero.
    """
    if presence is None:
        return ops.softmax(logits, axis=axis)
    p = presence
    for _ in range(len(logits.shape) - 2):
        p = ops.expand_dims(p, -1)
    weights = ops.softmax(logits + (1.0 - p) * NEG_INF, axis=axis)
    return weights * p
