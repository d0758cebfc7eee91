"""sce (Wan et al. 2024, FuseChat): Select the ``select_topk`` fraction of positions whose
task vectors vary most across models, Calculate each model's weight as its task vector's
mean square (normalised to sum 1), Erase entries against the elected sign; mergekit's
formula."""

import numpy as np

from .base import MergeMethod
from .task_arithmetic import consensus_mask


def sce_mask(deltas, select_topk):
    """Keep the ``int(select_topk * #nonzero variances)`` positions of largest variance
    (population variance across models).

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.sce import sce_mask
    print(sce_mask(np.array([[1.0, 0.0, 3.0], [1.0, 2.0, -3.0]]), 0.5))  # [False False  True]
    ```
    """
    if select_topk >= 1:
        return np.ones(deltas.shape[1:], dtype=bool)
    var = np.var(deltas, axis=0)
    k = int(np.count_nonzero(var) * select_topk)
    mask = np.zeros(var.size, dtype=bool)
    if k > 0:
        mask[np.argsort(-np.abs(var).ravel(), kind="stable")[:k]] = True
    return mask.reshape(var.shape)


def sce(tensors, base, *, select_topk=1.0):
    """base + sum_i c_i e_i tau_i / sum_i c_i e_i, c_i = mean(tau_i^2) / sum_j mean(tau_j^2)
    (uniform when all are ~0), e_i the sign-agreement mask, over the selected positions.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.sce import sce
    models = [np.array([1.0, -2.0, 0.5]), np.array([-1.5, 1.0, 0.2])]
    print(sce(models, np.zeros(3), select_topk=1.0))
    ```
    """
    deltas = np.stack([t - base for t in tensors])
    deltas = deltas * sce_mask(deltas, select_topk)
    erase = consensus_mask(deltas)
    power = np.mean(deltas.reshape(len(tensors), -1) ** 2, axis=1)
    total = float(np.sum(power))
    c = np.full_like(power, 1.0 / len(power)) if abs(total) < 1e-6 else power / total
    kept = c.reshape((-1,) + (1,) * base.ndim) * erase
    merged = np.sum(deltas * kept, axis=0) / np.maximum(np.sum(kept, axis=0), 1e-6)
    return (base + merged).astype(base.dtype)


METHOD = MergeMethod("sce", sce, global_parameters={"select_topk": 1.0}, needs_base=True)
