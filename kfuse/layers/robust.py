"""Robust combiners: outlier detection before combining (trimmed mean, median, gating)."""

import math

import keras
from keras import ops

from kfuse.layers.base import weighted_mean
from kfuse.layers.masking import MultiBranchFusion

_BIG = 1e30


def _full_presence(stacked, presence):
    """The presence mask broadcast to the shape of `stacked` (batch, M, ...)."""
    if presence is None:
        return ops.ones_like(stacked)
    p = presence
    for _ in range(len(stacked.shape) - 2):
        p = ops.expand_dims(p, -1)
    return p * ops.ones_like(stacked)


def _sort_cost(widths, passes=1):
    """FLOPs of sorting M members per element (M log2 M comparisons) plus the means."""
    count, width = len(widths), int(widths[0])
    per = max(1, math.ceil(count * math.log2(max(count, 2))))
    return {"params": 0, "flops": passes * (per + 2 * count) * width, "output_width": width}


def trimmed_mean(stacked, presence_full, trim=None):
    """Mean over axis 1 of the present members after dropping `trim` from each end.

    Computed per element (per sample and class). `trim=None` trims as far as possible,
    which gives the median. With n members present, at most (n - 1) // 2 are trimmed
    from each end, so a sample always keeps at least one member.
    """
    count = stacked.shape[1]
    filled = ops.where(presence_full > 0, stacked, ops.cast(_BIG, stacked.dtype))
    ordered = ops.sort(filled, axis=1)
    n = ops.sum(presence_full, axis=1, keepdims=True)
    most = ops.floor((n - 1.0) / 2.0)
    k = most if trim is None else ops.minimum(ops.cast(trim, stacked.dtype), most)
    k = ops.maximum(k, 0.0)
    shape = [1, count] + [1] * (len(stacked.shape) - 2)
    position = ops.reshape(ops.cast(ops.arange(count), stacked.dtype), shape)
    keep = ops.logical_and(position >= k, position < n - k)
    kept = ops.where(keep, ordered, ops.zeros_like(ordered))
    total = ops.sum(ops.cast(keep, stacked.dtype), axis=1)
    return ops.sum(kept, axis=1) / ops.maximum(total, 1.0)


@keras.saving.register_keras_serializable(package="kfuse")
class TrimmedMean(MultiBranchFusion):
    """Per sample and element, drop the `trim` lowest and `trim` highest members, average the rest.

    Members (branches) output one shape, e.g. class probabilities. With a presence mask
    only present members count, and the trim shrinks so at least one member is kept.

    Args:
        trim (int): int >= 1, members dropped from each end (needs M > 2 * trim branches).

    Keyword Args:
        branch_names (list[str] | None): optional branch names (set by `kfuse.stack`).

    Example:

    ```python
    import numpy as np
    import kfuse

    members = [np.full((1, 2), v) for v in (0.1, 0.2, 0.3, 0.9)]
    kfuse.layers.TrimmedMean(trim=1)(members)  # [[0.25, 0.25]]
    ```
    """

    requires_equal_shapes = True

    def __init__(self, trim=1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(trim, int) or isinstance(trim, bool) or trim < 1:
            raise ValueError(f"TrimmedMean: `trim` must be an int >= 1; received {trim!r}")
        self.trim = trim

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        if len(shapes) <= 2 * self.trim:
            raise ValueError(
                f"TrimmedMean(trim={self.trim}) drops {2 * self.trim} of every "
                f"{len(shapes)} members, leaving none; it needs more than {2 * self.trim} "
                "branches (or use Median)"
            )
        self.built = True

    def fuse(self, inputs, presence):
        stacked = ops.stack(inputs, axis=1)
        return trimmed_mean(stacked, _full_presence(stacked, presence), self.trim)

    @staticmethod
    def cost_formula(widths, **_):
        """Parameters (none), FLOPs per sample and output width."""
        return _sort_cost(widths)

    def get_config(self):
        config = super().get_config()
        config.update({"trim": self.trim})
        return config


@keras.saving.register_keras_serializable(package="kfuse")
class Median(MultiBranchFusion):
    """The element-wise median of the (present) members; the mean of the middle two when even.

    Example:

    ```python
    import numpy as np
    import kfuse

    members = [np.full((1, 2), v) for v in (0.1, 0.2, 0.9)]
    kfuse.layers.Median()(members)  # [[0.2, 0.2]]
    ```
    """

    requires_equal_shapes = True

    def fuse(self, inputs, presence):
        stacked = ops.stack(inputs, axis=1)
        return trimmed_mean(stacked, _full_presence(stacked, presence), None)

    @staticmethod
    def cost_formula(widths, **_):
        """Parameters (none), FLOPs per sample and output width."""
        return _sort_cost(widths)


@keras.saving.register_keras_serializable(package="kfuse")
class OutlierGatedAverage(MultiBranchFusion):
    """Average the members, giving zero weight per sample to those far from the consensus.

    Per sample: the consensus is the element-wise median of the present members; each
    member's distance d_m is the L2 distance of its output to the consensus; its robust
    z-score is d_m / (1.4826 * median_m d_m). Members with a z-score above `threshold`
    get zero weight for that sample, the others share equal weight. The member nearest
    the consensus is always kept.

    Args:
        threshold (float): float > 0, the z-score above which a member is dropped.

    Keyword Args:
        branch_names (list[str] | None): optional branch names (set by `kfuse.stack`).

    Example:

    ```python
    import numpy as np
    import kfuse

    members = [np.array([[0.8, 0.2]]), np.array([[0.7, 0.3]]), np.array([[0.0, 1.0]])]
    fuse = kfuse.layers.OutlierGatedAverage(threshold=3.0)
    fuse(members)  # [[0.75, 0.25]]: the third member is an outlier
    fuse.member_weights(members)  # [[1., 1., 0.]]
    ```
    """

    requires_equal_shapes = True

    def __init__(self, threshold=3.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold <= 0:
            raise ValueError(
                f"OutlierGatedAverage: `threshold` must be a number > 0; received {threshold!r}"
            )
        self.threshold = float(threshold)

    def _weights(self, inputs, presence):
        stacked = ops.stack(inputs, axis=1)
        full = _full_presence(stacked, presence)
        consensus = trimmed_mean(stacked, full, None)
        deviation = (stacked - ops.expand_dims(consensus, 1)) * full
        if len(stacked.shape) > 2:
            axes = tuple(range(2, len(stacked.shape)))
            distance = ops.sqrt(ops.sum(ops.square(deviation), axis=axes))
        else:
            distance = ops.abs(deviation)
        present = ops.ones_like(distance) if presence is None else presence
        scale = trimmed_mean(distance, present, None)
        z = distance / (1.4826 * ops.expand_dims(scale, 1) + 1e-12)
        nearest = ops.min(ops.where(present > 0, distance, _BIG), axis=1, keepdims=True)
        keep = ops.logical_or(z <= self.threshold, distance <= nearest)
        return ops.cast(keep, stacked.dtype) * present

    def fuse(self, inputs, presence):
        weights = self._weights(inputs, presence)
        return weighted_mean(inputs, [weights[:, i] for i in range(len(inputs))])

    @staticmethod
    def cost_formula(widths, **_):
        """Parameters (none), FLOPs per sample and output width."""
        cost = _sort_cost(widths, passes=2)
        cost["flops"] += 5 * len(widths) * int(widths[0])
        return cost

    def member_weights(self, inputs, presence=None):
        """The per-sample 0/1 weight of every member, `(batch, M)`, as a NumPy array."""
        inputs = [ops.convert_to_tensor(x) for x in inputs]
        if presence is not None:
            presence = ops.cast(presence, inputs[0].dtype)
        return ops.convert_to_numpy(self._weights(inputs, presence))

    def get_config(self):
        config = super().get_config()
        config.update({"threshold": self.threshold})
        return config
