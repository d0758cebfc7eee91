"""nearswap: take the other model's value where it is near the base's: per entry
``w = clip(t / max(|base - other|, 1e-6), 0, 1)``, ``w * other + (1 - w) * base``
(mergekit's formula; base plus exactly one model)."""

import numpy as np

from .base import MergeMethod


def nearswap(tensors, base, *, t):
    """Interpolate toward ``tensors[0]`` where it lies within ``t`` of ``base``.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.nearswap import nearswap
    print(nearswap([np.array([0.05, 2.0])], np.zeros(2), t=0.1))  # [0.05 0.1]
    ```
    """
    (other,) = tensors
    w = np.clip(t / np.maximum(np.abs(base - other), 1e-6), 0.0, 1.0)
    return (w * other + (1 - w) * base).astype(base.dtype)


METHOD = MergeMethod("nearswap", nearswap, global_parameters={"t": None}, needs_base=True,
                     min_models=1, max_models=1)
