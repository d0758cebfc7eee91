"""ties: trim each task vector to its top ``density`` by magnitude, elect signs, disjoint mean."""

from .base import MergeMethod
from .sparsify import magnitude_mask
from .task_arithmetic import generalized_task_arithmetic


def ties(tensors, base, *, weight, density, normalize=True, **kw):
    """TIES-merging (Yadav et al. 2023) as mergekit computes it.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.ties import ties
    base = np.zeros(3)
    models = [np.array([1.0, -2.0, 0.1]), np.array([-3.0, 1.0, 0.2])]
    print(ties(models, base, weight=[1.0, 1.0], density=[0.67, 0.67]))
    ```
    """
    masks = [(magnitude_mask(t - base, d), 1.0) for t, d in zip(tensors, density, strict=False)]
    return generalized_task_arithmetic(
        tensors, base, weight=weight, lam=kw.get("lambda", 1.0), normalize=normalize,
        consensus=True, masks=masks,
    )


METHOD = MergeMethod(
    "ties",
    ties,
    model_parameters={"weight": 1.0, "density": 1.0},
    global_parameters={"lambda": 1.0, "normalize": True},
    needs_base=True,
)
