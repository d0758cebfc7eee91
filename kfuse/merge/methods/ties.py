"""ties: trim each task vector to its top ``density`` by magnitude, elect signs, disjoint mean."""

from .base import MergeMethod
from .sparsify import magnitude_mask
from .task_arithmetic import generalized_task_arithmetic, sparse_masks


def ties(tensors, base, *, weight, density, normalize=True, rescale=False, **kw):
    """TIES-merging (Yadav et al. 2023) as mergekit computes it (``rescale``: restore each
    trimmed task vector's L1 norm, off by default as in mergekit).

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.ties import ties
    base = np.zeros(3)
    models = [np.array([1.0, -2.0, 0.1]), np.array([-3.0, 1.0, 0.2])]
    print(ties(models, base, weight=[1.0, 1.0], density=[0.67, 0.67]))
    ```
    """
    masks = sparse_masks(tensors, base, lambda d, i: magnitude_mask(d, density[i]), rescale)
    return generalized_task_arithmetic(
        tensors, base, weight=weight, lam=kw.get("lambda", 1.0), normalize=normalize,
        consensus=True, masks=masks,
    )


METHOD = MergeMethod(
    "ties",
    ties,
    model_parameters={"weight": 1.0, "density": 1.0},
    global_parameters={"lambda": 1.0, "normalize": True, "rescale": False},
    needs_base=True,
)
