"""linear: sum_i w_i theta_i / sum_i w_i (``normalize`` true by default).

Weights summing to zero (``1`` and ``-1``: one model minus another) are not divided by
their sum: the result is the weighted sum, as mergekit's task-vector methods do
(``generalized_task_arithmetic``: a divisor with ``|sum| < 1e-8`` is taken as 1; mergekit
0.1.5's own ``linear`` divides by zero and returns NaN).
"""

import numpy as np

from .base import MergeMethod

#: a weight sum below this in magnitude is not divided by (mergekit's 1e-8)
ZERO_SUM = 1e-8


def linear(tensors, base=None, *, weight, normalize=True):
    """Weighted average (or weighted sum when ``normalize=False`` or the weights sum to 0)
    of the tensors.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.linear import linear
    print(linear([np.ones(2), np.zeros(2)], weight=[3.0, 1.0]))  # [0.75 0.75]
    print(linear([np.ones(2), np.zeros(2)], weight=[1.0, -1.0]))  # [1. 1.]  (a - b)
    ```
    """
    w = np.asarray(weight, dtype=tensors[0].dtype)
    total = np.zeros_like(tensors[0])
    for wi, t in zip(w, tensors, strict=True):  # one tensor at a time (streamed merges)
        total += wi * t
    divisor = np.sum(w)
    if normalize and abs(divisor) >= ZERO_SUM:
        total = total / divisor
    return total


METHOD = MergeMethod(
    "linear",
    linear,
    model_parameters={"weight": 1.0},
    global_parameters={"normalize": True},
    min_models=1,
)
