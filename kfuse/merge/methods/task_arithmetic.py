"""task_arithmetic and its generalisation (sparsify, sign consensus, normalise, lambda).

tau_i = theta_i - theta_base; result = theta_base + lambda * mix(w_i tau_i).
"""

import numpy as np

from .base import MergeMethod
from .sparsify import l1_scale


def consensus_mask(weighted):
    """Entries whose sign agrees with the elected sign ``sign(sum_i d_i)`` (0 sum -> +).

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.task_arithmetic import consensus_mask
    print(consensus_mask(np.array([[1.0, -1.0], [-2.0, -1.0]])))
    ```
    """
    elected = np.where(np.sum(weighted, axis=0) >= 0, 1.0, -1.0)
    return np.sign(weighted) == elected


def sparse_masks(tensors, base, mask_of, rescale=False):
    """``(mask, scale)`` per model for ``generalized_task_arithmetic``: ``mask_of(delta, i)``
    is model ``i``'s keep-mask; ``scale`` restores the task vector's L1 norm when
    ``rescale`` (mergekit's ``rescale``), else 1.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.sparsify import magnitude_mask
    from kfuse.merge.methods.task_arithmetic import sparse_masks
    print(sparse_masks([np.array([1.0, -3.0])], np.zeros(2),
                       lambda d, i: magnitude_mask(d, 0.5), rescale=True))
    ```
    """
    masks = []
    for i, t in enumerate(tensors):
        delta = t - base
        mask = mask_of(delta, i)
        masks.append((mask, l1_scale(delta, mask) if rescale else 1.0))
    return masks


def generalized_task_arithmetic(
    tensors, base, *, weight, lam=1.0, normalize=False, consensus=False, masks=None
):
    """Mix weighted task vectors: optional keep-masks (already rescaled), sign consensus.

    ``masks`` is a list of (mask, scale) per model or ``None``; the sparsified task vector
    is ``tau_i * mask_i * scale_i``. Memory: one stacked copy of the task vectors plus a
    few tensors (a streamed merge of many models stays within one model's size).

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.task_arithmetic import generalized_task_arithmetic
    base = np.zeros(2)
    print(generalized_task_arithmetic([np.ones(2), -np.ones(2)], base, weight=[1.0, 2.0]))
    ```
    """
    w = np.asarray(weight, dtype=base.dtype)
    weighted = np.empty((len(tensors),) + base.shape, dtype=base.dtype)
    for i, t in enumerate(tensors):
        d = weighted[i]
        np.subtract(t, base, out=d)
        if masks is not None:
            d *= masks[i][0]
            d *= masks[i][1]
        d *= w[i]
    if consensus:  # as mergekit: a zero divisor (no agreeing model) becomes 1
        positive = np.sum(weighted, axis=0) >= 0  # the elected sign (0 sum -> +)
        mixed, divisor = np.zeros_like(base), np.zeros_like(base)
        for i, d in enumerate(weighted):
            keep = np.where(positive, d > 0, d < 0)
            mixed += d * keep
            divisor += w[i] * keep
        divisor[divisor == 0] = 1.0
    else:  # and a weight sum within 1e-8 of 0 becomes 1
        mixed = np.sum(weighted, axis=0)
        divisor = np.sum(w) if abs(np.sum(w)) >= 1e-8 else 1.0
    if normalize:
        mixed = mixed / divisor
    return (base + lam * mixed).astype(base.dtype)


def task_arithmetic(tensors, base, *, weight, normalize=False, **kw):
    """theta_base + lambda * sum_i w_i (theta_i - theta_base).

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.task_arithmetic import task_arithmetic
    print(task_arithmetic([np.ones(2)], np.zeros(2), weight=[1.0], **{"lambda": 0.5}))
    ```
    """
    return generalized_task_arithmetic(
        tensors, base, weight=weight, lam=kw.get("lambda", 1.0), normalize=normalize
    )


METHOD = MergeMethod(
    "task_arithmetic",
    task_arithmetic,
    model_parameters={"weight": 1.0},
    global_parameters={"lambda": 1.0, "normalize": False},
    needs_base=True,
)
