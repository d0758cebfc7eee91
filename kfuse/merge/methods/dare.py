"""dare_linear / dare_ties: drop task-vector entries at random (keep prob. ``density``), rescale.

The kept entries are divided by ``density`` (the DARE paper, Yu et al. 2023). The masks come
from ``rng`` (``numpy.random.Generator``), one ``rng.random(shape) < density`` per model in
order, so a seed reproduces them.
"""

from .base import MergeMethod
from .sparsify import random_mask
from .task_arithmetic import generalized_task_arithmetic


def _masks(tensors, density, rng):
    return [(random_mask(t.shape, d, rng), 1.0 / d) for t, d in zip(tensors, density, strict=False)]


def dare_linear(tensors, base, *, weight, density, rng, normalize=False, **kw):
    """DARE without sign consensus: base + lambda * sum_i w_i mask_i tau_i / density_i.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.dare import dare_linear
    rng = np.random.default_rng(0)
    print(dare_linear([np.ones(4)], np.zeros(4), weight=[1.0], density=[0.5], rng=rng))
    ```
    """
    return generalized_task_arithmetic(
        tensors, base, weight=weight, lam=kw.get("lambda", 1.0), normalize=normalize,
        masks=_masks(tensors, density, rng),
    )


def dare_ties(tensors, base, *, weight, density, rng, normalize=True, **kw):
    """DARE masks, then TIES sign election and disjoint mean.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.dare import dare_ties
    rng = np.random.default_rng(0)
    models = [np.ones(4), -np.ones(4) * 2]
    print(dare_ties(models, np.zeros(4), weight=[1.0, 1.0], density=[0.5, 0.5], rng=rng))
    ```
    """
    return generalized_task_arithmetic(
        tensors, base, weight=weight, lam=kw.get("lambda", 1.0), normalize=normalize,
        consensus=True, masks=_masks(tensors, density, rng),
    )


_MODEL = {"weight": 1.0, "density": 1.0}
DARE_LINEAR = MergeMethod(
    "dare_linear", dare_linear, dict(_MODEL), {"lambda": 1.0, "normalize": False, "seed": 0},
    needs_base=True, random=True,
)
DARE_TIES = MergeMethod(
    "dare_ties", dare_ties, dict(_MODEL), {"lambda": 1.0, "normalize": True, "seed": 0},
    needs_base=True, random=True,
)
