"""linear: sum_i w_i theta_i / sum_i w_i (``normalize`` true by default)."""

import numpy as np

from .base import MergeMethod


def linear(tensors, base=None, *, weight, normalize=True):
    """Weighted average (or weighted sum when ``normalize=False``) of the tensors.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.linear import linear
    print(linear([np.ones(2), np.zeros(2)], weight=[3.0, 1.0]))  # [0.75 0.75]
    ```
    """
    w = np.asarray(weight, dtype=tensors[0].dtype)
    total = np.zeros_like(tensors[0])
    for wi, t in zip(w, tensors, strict=True):  # one tensor at a time (streamed merges)
        total += wi * t
    if normalize:
        total = total / np.sum(w)
    return total


METHOD = MergeMethod(
    "linear",
    linear,
    model_parameters={"weight": 1.0},
    global_parameters={"normalize": True},
    min_models=1,
)
